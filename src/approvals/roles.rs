//! What each operator role may do in the console: viewers read, approvers also decide held
//! actions, admins also set policies, manage operators and export the audit trail.

use crate::store::OperatorRole;

pub fn may_decide(role: OperatorRole) -> bool {
    role >= OperatorRole::Approver
}

pub fn may_administer(role: OperatorRole) -> bool {
    role == OperatorRole::Admin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_what_the_table_says() {
        use OperatorRole::*;
        let table = [
            (Viewer, false, false),
            (Approver, true, false),
            (Admin, true, true),
        ];
        for (role, decide, admin) in table {
            assert_eq!(may_decide(role), decide, "{role}");
            assert_eq!(may_administer(role), admin, "{role}");
        }
    }
}
