//! Locks of the engine's SQLite that the app's own SQLite cannot drop: the engine
//! bundles its copy of SQLite and Python's `sqlite3` loads another, and POSIX locks
//! belong to the process, so every connection the app closed released the engine's
//! locks (and let the app's copy delete the engine's `-wal`). On Linux the engine's
//! copy locks with open-file-description locks instead; see `sqlite_locks.c`.

use std::sync::OnceLock;

/// How the engine's SQLite locks its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    /// Open-file-description locks: safe beside other copies of SQLite in the process.
    OpenFileDescription,
    /// SQLite's own POSIX locks (not Linux, or a kernel before 3.15).
    Posix,
}

/// Installs the OFD lock replacements into the engine's SQLite, once, before its
/// first file is opened; returns how files are locked.
pub fn install() -> Locking {
    static LOCKING: OnceLock<Locking> = OnceLock::new();
    *LOCKING.get_or_init(imp::install)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::os::raw::c_int;

    use rusqlite::ffi;

    use super::Locking;

    type Syscall = ffi::sqlite3_syscall_ptr;

    extern "C" {
        // Only their addresses are taken here; SQLite calls them with its own signatures.
        fn kernia_locks_open();
        fn kernia_locks_close();
        fn kernia_locks_fcntl();
        fn kernia_locks_supported() -> c_int;
        fn kernia_locks_init(open: Syscall, close: Syscall, fcntl: Syscall);
    }

    pub fn install() -> Locking {
        // SAFETY: the default VFS is SQLite's unix VFS, which has these three system
        // calls; the replacements keep their signatures and call the originals.
        unsafe {
            if kernia_locks_supported() == 0 {
                eprintln!(
                    "kernia: this kernel has no open-file-description locks; do not open the auth \
                     database with another SQLite library in this process"
                );
                return Locking::Posix;
            }
            let vfs = ffi::sqlite3_vfs_find(std::ptr::null());
            let (Some(get), Some(set)) = (vfs.as_ref().and_then(|v| v.xGetSystemCall), (*vfs).xSetSystemCall) else {
                return Locking::Posix;
            };
            let original = |name: &std::ffi::CStr| get(vfs, name.as_ptr());
            kernia_locks_init(original(c"open"), original(c"close"), original(c"fcntl"));
            let replacements: [(&std::ffi::CStr, unsafe extern "C" fn()); 3] =
                [(c"open", kernia_locks_open), (c"close", kernia_locks_close), (c"fcntl", kernia_locks_fcntl)];
            for (name, f) in replacements {
                if set(vfs, name.as_ptr(), Some(f)) != ffi::SQLITE_OK {
                    // Put back what was replaced so far: all three or none.
                    for (name, _) in replacements {
                        set(vfs, name.as_ptr(), None);
                    }
                    return Locking::Posix;
                }
            }
        }
        Locking::OpenFileDescription
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::Locking;

    pub fn install() -> Locking {
        Locking::Posix
    }
}
