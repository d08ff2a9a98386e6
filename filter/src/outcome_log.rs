//! What a job repeated every interval (the OpenAPI fetch, the health poll) writes to the log:
//! its first failure, a failure other than the one before, and its recovery; not the same
//! failure again every interval, forever, for an API that simply has no OpenAPI document.

/// The last outcome a repeated job logged.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OutcomeLog {
    /// The reason of the failure logged last, while the job keeps failing.
    failing: Option<String>,
}

impl OutcomeLog {
    /// The job failed for `reason`: true when that is worth a log line (the first failure,
    /// or another reason than the one logged before).
    pub fn failed(&mut self, reason: &str) -> bool {
        if self.failing.as_deref() == Some(reason) {
            return false;
        }
        self.failing = Some(reason.to_string());
        true
    }

    /// The job succeeded: true when it had been failing (worth saying it recovered).
    pub fn succeeded(&mut self) -> bool {
        self.failing.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_logged_once_until_it_changes_or_the_job_recovers() {
        let mut log = OutcomeLog::default();
        assert!(!log.succeeded(), "nothing to recover from");
        assert!(log.failed("answered 404"));
        for _ in 0..5 {
            assert!(!log.failed("answered 404"), "the same failure again");
        }
        assert!(log.failed("answered 503"), "another failure");
        assert!(
            log.failed("answered 404"),
            "back to the first: a change too"
        );
        assert!(log.succeeded(), "recovered");
        assert!(!log.succeeded());
        assert!(log.failed("answered 404"), "failing again after a success");
    }
}
