//! Server-side calls on users and sessions for app code (`auth.api.*` in Python):
//! the same effects as the account routes, for a user the app names by id.

use crate::auth::Auth;
use crate::error::AuthError;
use crate::model::{Session, User};
use crate::storage::{Login, WriteOp};

impl Auth {
    /// The user's unexpired sessions, oldest first.
    pub async fn live_sessions(&self, user_id: &str) -> Result<Vec<Session>, AuthError> {
        let now = self.clock.now_ms();
        let sessions = self.store.sessions_of_user(user_id).await?;
        Ok(sessions.into_iter().filter(|s| s.expires_at > now).collect())
    }

    /// Ends the session with this token; whether there was one.
    pub async fn revoke_session(&self, token: &str) -> Result<bool, AuthError> {
        let found = self.store.session_with_user(token).await?.is_some();
        self.store.apply(vec![WriteOp::DeleteSessionByToken(token.to_owned())]).await?;
        Ok(found)
    }

    /// Ends every session of the user.
    pub async fn revoke_sessions(&self, user_id: &str) -> Result<(), AuthError> {
        Ok(self.store.apply(vec![WriteOp::DeleteSessionsOfUser(user_id.to_owned())]).await?)
    }

    /// Sets the user's name and image (`Some(None)` clears it); the updated user,
    /// or `None` when there is no such user.
    pub async fn update_profile(
        &self,
        user_id: &str,
        name: Option<String>,
        image: Option<Option<String>>,
    ) -> Result<Option<User>, AuthError> {
        if self.store.user(Login::Id, user_id).await?.is_none() {
            return Ok(None);
        }
        let update = WriteOp::UpdateUser {
            user_id: user_id.to_owned(),
            updated_at: self.clock.now_ms(),
            name,
            image,
            username: None,
            display_username: None,
        };
        self.store.apply(vec![update]).await?;
        Ok(self.store.user(Login::Id, user_id).await?)
    }

    /// Deletes the user with its sessions, accounts and passkeys; whether it existed.
    pub async fn delete_user(&self, user_id: &str) -> Result<bool, AuthError> {
        if self.store.user(Login::Id, user_id).await?.is_none() {
            return Ok(false);
        }
        self.store.apply(vec![WriteOp::DeleteUser(user_id.to_owned())]).await?;
        Ok(true)
    }
}
