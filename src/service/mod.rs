//! Domain operations shared by the HTTP routes, the CLI and the tests. Nothing here
//! knows about requests; callers pass the tenant and actor explicitly.

pub mod catalog;
pub mod clients;
pub mod deployments;
pub mod events;
pub mod folders;
pub mod history;
pub mod listing;
pub mod rainbond;
pub mod roles;

/// Who caused a change, as recorded in the deployment history.
#[derive(Debug, Clone)]
pub struct Actor {
    pub subject: String,
    pub request_id: Option<String>,
    /// The durable operation acting on the subject's behalf, when one is.
    pub operation_id: Option<String>,
}

impl Actor {
    pub fn new(subject: impl Into<String>, request_id: Option<String>) -> Self {
        Actor {
            subject: subject.into(),
            request_id,
            operation_id: None,
        }
    }

    /// The subject acting through operation `operation_id`.
    pub fn through_operation(mut self, operation_id: impl Into<String>) -> Self {
        self.operation_id = Some(operation_id.into());
        self
    }
}
