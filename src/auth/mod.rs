//! Bearer-JWT authentication: which keys verify tokens (`keys`), the caller they name
//! (`principal`), and the OAuth scopes a call needs (`scopes`).

pub mod keys;
pub mod principal;
pub mod scopes;
pub mod secret_file;

pub use keys::{Keys, TokenError};
pub use principal::Principal;
