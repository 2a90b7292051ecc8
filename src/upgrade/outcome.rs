//! What happened to each id of a bulk upgrade. (The wire forms are the HTTP layer's.)

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Updated(Updated),
    Failed(Failure),
}

/// A deployment now on the latest published version (possibly unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The id as the client sent it.
    pub id: String,
    pub app_system_name: String,
    pub version: i32,
    pub previous_version: i32,
}

impl Updated {
    pub fn changed(&self) -> bool {
        self.version != self.previous_version
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub id: String,
    pub code: FailureCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// Unknown, malformed, or in another folder or tenant: never says which.
    NotFound,
    /// The app has no published version to upgrade to.
    NoPublishedVersion,
    /// Another transaction held the deployment longer than the lock timeout.
    Conflict,
    /// Anything else; the cause is in the server log under the request id.
    Internal,
    /// Not started: the call's failure budget (`maxFailures`) was spent, or the
    /// operation running it stopped.
    Skipped,
    /// Not started: the operation running it was canceled.
    Canceled,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::NotFound => "not_found",
            FailureCode::NoPublishedVersion => "no_published_version",
            FailureCode::Conflict => "conflict",
            FailureCode::Internal => "internal",
            FailureCode::Skipped => "skipped",
            FailureCode::Canceled => "canceled",
        }
    }

    /// The code as stored (`as_str`), back.
    pub fn parse(code: &str) -> Option<Self> {
        [
            FailureCode::NotFound,
            FailureCode::NoPublishedVersion,
            FailureCode::Conflict,
            FailureCode::Internal,
            FailureCode::Skipped,
            FailureCode::Canceled,
        ]
        .into_iter()
        .find(|c| c.as_str() == code)
    }
}

impl Failure {
    pub fn new(id: &str, code: FailureCode) -> Self {
        let message = match code {
            FailureCode::NotFound => "no deployment with this id in this folder",
            FailureCode::NoPublishedVersion => "the app has no published version",
            FailureCode::Conflict => "the deployment is being changed by another request; retry",
            FailureCode::Internal => "the upgrade failed and was rolled back; see the server log",
            FailureCode::Skipped => "not started: the failure budget (maxFailures) was spent",
            FailureCode::Canceled => "not started: the operation was canceled",
        };
        Failure {
            id: id.to_string(),
            code,
            message: message.to_string(),
        }
    }
}
