/*
 * File locks for the engine's copy of SQLite that no other copy in the process can
 * drop.
 *
 * SQLite locks files with POSIX advisory locks, which belong to the process: closing
 * any descriptor of a file releases every lock the process holds on it. One copy of
 * SQLite copes (it defers its own closes while it holds locks), but a Python app loads
 * a second copy (the one behind `sqlite3`), and each time that copy closes a
 * connection to the same file, the engine's locks vanish; the app's copy then thinks
 * it is the last user of the file and deletes the -wal and -shm the engine is still
 * writing to.
 *
 * Open-file-description locks (Linux 3.15+) belong to an open file description
 * instead. These replacements for SQLite's `open`, `close` and `fcntl` system calls
 * (installed with `xSetSystemCall` on the engine's copy only) turn its lock requests
 * into OFD lock requests, all made on one description per file (a `dup` kept while
 * the engine has the file open). So the engine's connections share their locks with
 * each other, exactly as POSIX locks of one process would, while the app's copy
 * sees them as another process's locks: nothing it closes can release them, and it
 * waits for them like it would for another process.
 */
#ifdef __linux__
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*open_fn)(const char *, int, int);
typedef int (*close_fn)(int);
typedef int (*fcntl_fn)(int, int, ...);

static open_fn real_open;
static close_fn real_close;
static fcntl_fn real_fcntl;

/* One file the engine has open: how many of its descriptors, and the description
 * its locks are held on (-1 until the first lock). */
struct file {
    dev_t dev;
    ino_t ino;
    int refs;
    _Atomic int master;
};

/* Opens and closes are rare and take the mutex; a lock request reads two atomics
 * and takes the mutex only to make a file's master description the first time. */
#define MAX_FILES 4096
#define MAX_FD 65536
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static struct file files[MAX_FILES];
static int n_files;
/* Descriptor -> 1 + index in `files`, or 0. */
static _Atomic int by_fd[MAX_FD];

static int file_index(dev_t dev, ino_t ino) {
    for (int i = 0; i < n_files; i++) {
        if (files[i].refs > 0 && files[i].dev == dev && files[i].ino == ino) return i;
    }
    return -1;
}

static int new_file(dev_t dev, ino_t ino) {
    int i = 0;
    while (i < n_files && files[i].refs > 0) i++;
    if (i == MAX_FILES) return -1;
    if (i == n_files) n_files++;
    files[i].dev = dev;
    files[i].ino = ino;
    files[i].refs = 0;
    atomic_store(&files[i].master, -1);
    return i;
}

int kernia_locks_open(const char *path, int flags, int mode) {
    int fd = real_open(path, flags, mode);
    if (fd >= MAX_FD) {
        /* Past the table: move it to the lowest free descriptor, or fail the open
         * rather than lock this file two different ways. */
        int low = real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
        real_close(fd);
        if (low >= MAX_FD) real_close(low);
        if (low < 0 || low >= MAX_FD) {
            errno = EMFILE;
            return -1;
        }
        fd = low;
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return fd;
    pthread_mutex_lock(&mutex);
    int i = file_index(st.st_dev, st.st_ino);
    if (i < 0) i = new_file(st.st_dev, st.st_ino);
    if (i >= 0) {
        files[i].refs++;
        atomic_store(&by_fd[fd], i + 1);
    }
    pthread_mutex_unlock(&mutex);
    return fd;
}

int kernia_locks_close(int fd) {
    int master = -1;
    if (fd >= 0 && fd < MAX_FD && atomic_load(&by_fd[fd]) > 0) {
        pthread_mutex_lock(&mutex);
        struct file *f = &files[atomic_load(&by_fd[fd]) - 1];
        atomic_store(&by_fd[fd], 0);
        if (--f->refs == 0) master = atomic_exchange(&f->master, -1);
        pthread_mutex_unlock(&mutex);
    }
    if (master >= 0) real_close(master);
    return real_close(fd);
}

/* The description the locks of `fd`'s file are held on; -1 for a file not opened
 * through `kernia_locks_open`. */
static int master_of(int fd) {
    if (fd < 0 || fd >= MAX_FD) return -1;
    int index = atomic_load(&by_fd[fd]);
    if (index == 0) return -1;
    struct file *f = &files[index - 1];
    int master = atomic_load(&f->master);
    if (master >= 0) return master;
    pthread_mutex_lock(&mutex);
    master = atomic_load(&f->master);
    if (master < 0) {
        master = real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
        atomic_store(&f->master, master);
    }
    pthread_mutex_unlock(&mutex);
    return master;
}

int kernia_locks_fcntl(int fd, int op, ...) {
    va_list ap;
    va_start(ap, op);
    int rc;
    if (op == F_SETLK || op == F_SETLKW || op == F_GETLK) {
        struct flock *lock = va_arg(ap, struct flock *);
        int master = master_of(fd);
        if (master < 0) {
            rc = real_fcntl(fd, op, lock);
        } else {
            struct flock ofd = *lock;
            ofd.l_pid = 0; /* required for OFD requests */
            int ofd_op = op == F_SETLK ? F_OFD_SETLK : op == F_SETLKW ? F_OFD_SETLKW : F_OFD_GETLK;
            rc = real_fcntl(master, ofd_op, &ofd);
            if (rc == 0 && op == F_GETLK) *lock = ofd;
        }
    } else if (op == F_GETFD || op == F_GETFL) {
        rc = real_fcntl(fd, op);
    } else {
        /* F_SETFD, F_SETFL, F_DUPFD, F_FULLFSYNC: an int argument at most. */
        int arg = va_arg(ap, int);
        rc = real_fcntl(fd, op, arg);
    }
    va_end(ap);
    return rc;
}

/* Whether this kernel has OFD locks (EINVAL before Linux 3.15). */
int kernia_locks_supported(void) {
    char path[] = "/tmp/kernia-ofd-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    unlink(path);
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1, .l_pid = 0};
    int ok = fcntl(fd, F_OFD_GETLK, &l) == 0;
    close(fd);
    return ok;
}

void kernia_locks_init(open_fn o, close_fn c, fcntl_fn f) {
    real_open = o;
    real_close = c;
    real_fcntl = f;
}
#endif
