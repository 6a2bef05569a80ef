//! The client's error type.

use tonic::Code;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The request is malformed or over a limit; the message says which.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The namespace (or another named thing) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request does not fit the current state (e.g. the namespace's mode).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// No node could serve the request before the retry budget ran out. For a
    /// compare-and-swap, compare-and-delete or writing transaction this means
    /// every server that answered said it did not apply the request.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A compare-and-swap, compare-and-delete or writing transaction may or
    /// may not have been applied: with exactly-once writes (the default),
    /// no retry got an answer within the budget after one may have reached a
    /// server, or a retry came after the cluster forgot the write's id;
    /// without them, it was not retried once it may have been sent. Read the
    /// keys to learn the outcome.
    #[error("outcome unknown: {0}")]
    Indeterminate(String),
    /// A watch's next revision is older than any node's watch history
    /// (which starts at `oldest`): re-read the keys and watch again from the
    /// version read.
    #[error("watch history compacted (oldest revision {oldest}): {message}")]
    Compacted { oldest: u64, message: String },
    /// A lock (or leadership) is no longer held: its lease was lost or the
    /// key changed hands. Stop acting as its holder.
    #[error("lock lost: {0}")]
    LockLost(String),
    /// No usable identity: auth is enabled and the request had no valid
    /// token (or the credentials are wrong).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The user lacks a right the request needs; nothing was done.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    /// Any other status the server returned.
    #[error("server error {code:?}: {message}")]
    Server { code: Code, message: String },
}

impl ClientError {
    /// Whether sending the same request again may succeed.
    /// Exhaustive on purpose: a new variant forces a decision.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Unavailable(_) => true,
            ClientError::Indeterminate(_) => false,
            ClientError::InvalidArgument(_) => false,
            ClientError::NotFound(_) => false,
            ClientError::FailedPrecondition(_) => false,
            ClientError::ResourceExhausted(_) => false,
            ClientError::InvalidEndpoint(_) => false,
            ClientError::Unauthenticated(_) => false,
            ClientError::PermissionDenied(_) => false,
            ClientError::Compacted { .. } => false,
            ClientError::LockLost(_) => false,
            ClientError::Server { .. } => false,
        }
    }

    pub(crate) fn from_status(s: &tonic::Status) -> Self {
        let m = s.message().to_string();
        match s.code() {
            Code::InvalidArgument => ClientError::InvalidArgument(m),
            Code::NotFound => ClientError::NotFound(m),
            Code::FailedPrecondition => ClientError::FailedPrecondition(m),
            Code::ResourceExhausted => ClientError::ResourceExhausted(m),
            Code::Unavailable => ClientError::Unavailable(m),
            Code::Unauthenticated => ClientError::Unauthenticated(m),
            Code::PermissionDenied => ClientError::PermissionDenied(m),
            code => ClientError::Server { code, message: m },
        }
    }
}
