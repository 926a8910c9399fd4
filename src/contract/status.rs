//! The states an action goes through, as stored and shown. The rules that move an action
//! between them live in `results::lifecycle`.

use serde::{Deserialize, Serialize};

macro_rules! statuses {
    ($($variant:ident = $wire:literal, terminal = $t:literal;)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ActionStatus { $($variant),+ }

        impl ActionStatus {
            pub const ALL: &'static [ActionStatus] = &[$(ActionStatus::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(ActionStatus::$variant => $wire),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some(ActionStatus::$variant),)+ _ => None }
            }

            /// No report moves it any more.
            pub fn is_terminal(self) -> bool {
                match self { $(ActionStatus::$variant => $t),+ }
            }
        }
    };
}

statuses! {
    PendingApproval = "pending_approval", terminal = false;
    Pending = "pending", terminal = false;
    Published = "published", terminal = false;
    Acknowledged = "acknowledged", terminal = false;
    Applied = "applied", terminal = false;
    Failed = "failed", terminal = true;
    Rejected = "rejected", terminal = true;
    Reverting = "reverting", terminal = false;
    Reverted = "reverted", terminal = true;
    RevertFailed = "revert_failed", terminal = true;
    Concluded = "concluded", terminal = true;
    Superseded = "superseded", terminal = true;
    Expired = "expired", terminal = true;
}

impl std::fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_their_names() {
        for s in ActionStatus::ALL {
            assert_eq!(ActionStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(ActionStatus::parse("executed"), None);
    }
}
