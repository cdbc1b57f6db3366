//! The registry's errors, each tied to the Confluent Schema Registry error code and HTTP status that clients
//! expect for it.

/// An error from the schema registry. [`Error::error_code`] and [`Error::http_status`] give its Confluent code
/// and status; its `Display` is the message shown to clients (except for [`Error::Bus`] and [`Error::Internal`],
/// whose details are logged and never shown).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The subject has no (visible) version. Code 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// The subject has no such (visible) version. Code 40402.
    #[error("Version {0} not found.")]
    VersionNotFound(u32),
    /// No schema with this id. Code 40403.
    #[error("Schema {0} not found.")]
    SchemaIdNotFound(i32),
    /// The schema looked up is not registered under the subject. Code 40403.
    #[error("Schema not found")]
    SchemaNotFound,
    /// A soft-deleted subject was soft-deleted again. Code 40404.
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// A permanent delete of a subject that was not soft-deleted first. Code 40405.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// A soft-deleted version was soft-deleted again. Code 40406.
    #[error("Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: u32,
    },
    /// A permanent delete of a version that was not soft-deleted first. Code 40407.
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: u32,
    },
    /// The subject has no subject-level compatibility level. Code 40408.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    /// The schema breaks the subject's compatibility level. Code 409.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\": {}", .messages.join("; "))]
    Incompatible {
        /// The subject.
        subject: String,
        /// One sentence per incompatibility, each naming the field and the version it conflicts with.
        messages: Vec<String>,
    },
    /// The schema text is not a valid Avro schema. Code 42201.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// A schema type other than AVRO. Code 42201.
    #[error(
        "Invalid schema: unsupported schema type '{0}': this registry serves AVRO schemas only"
    )]
    UnsupportedSchemaType(String),
    /// Schema references, which this registry does not support. Code 42201.
    #[error("Invalid schema: schema references are not supported; inline the referenced types")]
    ReferencesNotSupported,
    /// A version that is neither a number from 1 to 2^31-1 nor `latest`. Code 42202.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// A compatibility level that does not exist. Code 42203.
    #[error("Invalid compatibility level '{0}'. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel(String),
    /// A request that cannot be understood (malformed JSON, a missing field). Code 422.
    #[error("{0}")]
    InvalidRequest(String),
    /// A request body in a media type other than JSON. Code 415.
    #[error("Unsupported media type '{0}': send application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json or application/json")]
    UnsupportedMediaType(String),
    /// Other processes kept winning the race for the next id or version. Code 50002.
    #[error(
        "Registration did not settle after {0} attempts because of concurrent registrations; retry"
    )]
    Contention(u32),
    /// The registry's view did not catch up with its own write in time. Code 50002.
    #[error("Operation timed out")]
    Timeout,
    /// The registry is shut down or not caught up with its topic yet. Code 50003.
    #[error("The schema registry is not ready")]
    NotReady,
    /// The caller presented no (valid) credentials. Code 40101.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this; the message says why. Code 40301.
    #[error("{0}")]
    Forbidden(String),
    /// The bus failed. Code 50001; the cause is logged, not shown.
    #[error("bus: {0}")]
    Bus(#[from] unsilo_bus::Error),
    /// Any other internal failure. Code 50001; the cause is logged, not shown.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result type of registry operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The Confluent `error_code` of this error.
    pub fn error_code(&self) -> u32 {
        match self {
            Error::Unauthorized(_) => 40101,
            Error::Forbidden(_) => 40301,
            Error::SubjectNotFound(_) => 40401,
            Error::VersionNotFound(_) => 40402,
            Error::SchemaIdNotFound(_) | Error::SchemaNotFound => 40403,
            Error::SubjectSoftDeleted(_) => 40404,
            Error::SubjectNotSoftDeleted(_) => 40405,
            Error::VersionSoftDeleted { .. } => 40406,
            Error::VersionNotSoftDeleted { .. } => 40407,
            Error::SubjectCompatibilityNotConfigured(_) => 40408,
            Error::Incompatible { .. } => 409,
            Error::InvalidSchema(_)
            | Error::UnsupportedSchemaType(_)
            | Error::ReferencesNotSupported => 42201,
            Error::InvalidVersion(_) => 42202,
            Error::InvalidCompatibilityLevel(_) => 42203,
            Error::InvalidRequest(_) => 422,
            Error::UnsupportedMediaType(_) => 415,
            Error::Contention(_) | Error::Timeout => 50002,
            Error::NotReady => 50003,
            Error::Bus(_) | Error::Internal(_) => 50001,
        }
    }

    /// The HTTP status of this error.
    pub fn http_status(&self) -> u16 {
        match self.error_code() {
            409 => 409,
            40101 => 401,
            40301 => 403,
            415 => 415,
            code if (40400..40500).contains(&code) => 404,
            code if (42200..42300).contains(&code) || code == 422 => 422,
            _ => 500,
        }
    }

    /// Whether the message must be hidden from clients (it may carry internals); such errors are logged.
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Bus(_) | Error::Internal(_))
    }

    /// The message shown to clients: the `Display` text, or a fixed sentence for internal errors.
    pub fn client_message(&self) -> String {
        if self.is_internal() {
            "Error in the backend data store".to_owned()
        } else {
            self.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_follow_confluent() {
        let cases: Vec<(Error, u32, u16)> = vec![
            (Error::SubjectNotFound("s".into()), 40401, 404),
            (Error::VersionNotFound(3), 40402, 404),
            (Error::SchemaIdNotFound(9), 40403, 404),
            (Error::SubjectNotSoftDeleted("s".into()), 40405, 404),
            (
                Error::VersionNotSoftDeleted {
                    subject: "s".into(),
                    version: 1,
                },
                40407,
                404,
            ),
            (
                Error::SubjectCompatibilityNotConfigured("s".into()),
                40408,
                404,
            ),
            (
                Error::Incompatible {
                    subject: "s".into(),
                    messages: vec!["x".into()],
                },
                409,
                409,
            ),
            (Error::InvalidSchema("bad".into()), 42201, 422),
            (Error::InvalidVersion("0".into()), 42202, 422),
            (Error::InvalidCompatibilityLevel("X".into()), 42203, 422),
            (Error::InvalidRequest("bad json".into()), 422, 422),
            (Error::Timeout, 50002, 500),
            (Error::Internal("disk".into()), 50001, 500),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.error_code(), code, "{err}");
            assert_eq!(err.http_status(), status, "{err}");
        }
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let err = Error::Internal("/var/lib/unsilo/secret path".into());
        assert_eq!(err.client_message(), "Error in the backend data store");
        let err = Error::SubjectNotFound("std.x-value".into());
        assert_eq!(err.client_message(), "Subject 'std.x-value' not found.");
    }
}
