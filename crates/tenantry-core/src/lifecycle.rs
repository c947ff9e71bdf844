//! The tenant state machine.
//!
//! ```text
//! requested → validating → provisioning → active ⇄ suspended
//!                                           ↓          ↓
//!                                        deleting → deleted
//! any in-flight state → failed;  failed → provisioning (retry) | deleting
//! ```
//!
//! Every transition is checked here before the catalog writes it, so an illegal one (resuming an
//! active tenant, say) is a typed error that names both states, never a silent no-op.

use crate::isolation::{UnknownValue, words};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a tenant is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    /// Asked for; nothing exists yet.
    Requested,
    /// Its request is being checked against the catalog.
    Validating,
    /// Its space, storage and identity are being created.
    Provisioning,
    /// Serving.
    Active,
    /// Kept (data and storage) but not served.
    Suspended,
    /// Its space and storage are being removed.
    Deleting,
    /// Gone; the catalog row stays for audit.
    Deleted,
    /// An operation failed; the tenant's record says which step and why.
    Failed,
}

words!(TenantState, "state",
    Requested => "requested", Validating => "validating", Provisioning => "provisioning",
    Active => "active", Suspended => "suspended", Deleting => "deleting", Deleted => "deleted",
    Failed => "failed");

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tenant that is {from} cannot become {to}{hint}")]
pub struct IllegalTransition {
    pub from: TenantState,
    pub to: TenantState,
    hint: &'static str,
}

impl TenantState {
    /// All states, in lifecycle order.
    pub const ALL: [TenantState; 8] = [
        TenantState::Requested,
        TenantState::Validating,
        TenantState::Provisioning,
        TenantState::Active,
        TenantState::Suspended,
        TenantState::Deleting,
        TenantState::Deleted,
        TenantState::Failed,
    ];

    /// Whether the lifecycle allows going from `self` to `to`.
    pub fn can_become(self, to: TenantState) -> bool {
        use TenantState::*;
        matches!(
            (self, to),
            (Requested, Validating)
                | (Validating, Provisioning)
                | (Provisioning, Active)
                | (Active, Suspended)
                | (Suspended, Active)
                | (Active | Suspended | Failed, Deleting)
                | (Deleting, Deleted)
                | (Requested | Validating | Provisioning | Deleting, Failed)
                // The reconciler found its data gone: reported, never recreated empty.
                | (Active | Suspended, Failed)
                | (Failed, Provisioning)
        )
    }

    /// Checks a transition, explaining a refusal in words an operator can act on.
    pub fn transition(self, to: TenantState) -> Result<TenantState, IllegalTransition> {
        if self.can_become(to) {
            return Ok(to);
        }
        let hint = match (self, to) {
            (TenantState::Active, TenantState::Active) => " (it is already active)",
            (TenantState::Suspended, TenantState::Suspended) => " (it is already suspended)",
            (TenantState::Deleted, _) => " (it has been deleted)",
            (_, TenantState::Suspended) => " (only an active tenant can be suspended)",
            (_, TenantState::Active) => " (only a suspended tenant can be resumed)",
            (_, TenantState::Deleting) => {
                " (wait for its current operation to finish, or let it fail first)"
            }
            _ => "",
        };
        Err(IllegalTransition {
            from: self,
            to,
            hint,
        })
    }

    /// States that end an operation's influence: nothing runs on the tenant in them.
    pub fn is_terminal(self) -> bool {
        matches!(self, TenantState::Deleted)
    }

    /// Whether the tenant's space is expected to exist in this state.
    pub fn holds_data(self) -> bool {
        matches!(self, TenantState::Active | TenantState::Suspended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_state() -> impl Strategy<Value = TenantState> {
        proptest::sample::select(TenantState::ALL.to_vec())
    }

    #[test]
    fn the_happy_path_is_allowed() {
        use TenantState::*;
        let path = [
            Requested,
            Validating,
            Provisioning,
            Active,
            Suspended,
            Active,
            Deleting,
            Deleted,
        ];
        for pair in path.windows(2) {
            assert_eq!(pair[0].transition(pair[1]), Ok(pair[1]));
        }
    }

    #[test]
    fn resuming_an_active_tenant_is_refused_with_a_reason() {
        let err = TenantState::Active
            .transition(TenantState::Active)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a tenant that is active cannot become active (it is already active)"
        );
    }

    proptest! {
        #[test]
        fn deleted_is_final(to in any_state()) {
            prop_assert!(TenantState::Deleted.transition(to).is_err());
        }

        #[test]
        fn transition_agrees_with_can_become(from in any_state(), to in any_state()) {
            prop_assert_eq!(from.transition(to).is_ok(), from.can_become(to));
        }

        #[test]
        fn no_state_transitions_to_itself(s in any_state()) {
            prop_assert!(s.transition(s).is_err());
        }

        /// Any walk of legal transitions from `requested` only passes through `active` after
        /// `provisioning`, and never leaves `deleted`.
        #[test]
        fn legal_walks_respect_the_lifecycle(choices in proptest::collection::vec(0usize..8, 0..40)) {
            let mut state = TenantState::Requested;
            let mut provisioned = false;
            for choice in choices {
                let next: Vec<_> = TenantState::ALL.iter().copied().filter(|t| state.can_become(*t)).collect();
                if next.is_empty() {
                    prop_assert_eq!(state, TenantState::Deleted);
                    break;
                }
                let to = next[choice % next.len()];
                if to == TenantState::Active && state == TenantState::Provisioning {
                    provisioned = true;
                }
                if to == TenantState::Active {
                    prop_assert!(provisioned, "active before provisioning completed");
                }
                state = state.transition(to).unwrap();
            }
        }
    }

    #[test]
    fn words_round_trip() {
        for s in TenantState::ALL {
            assert_eq!(s.as_str().parse::<TenantState>().unwrap(), s);
        }
        let _ = TenantState::from_str("active").unwrap();
        let _: &dyn fmt::Display = &TenantState::Active;
    }
}
