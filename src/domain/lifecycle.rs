//! Which changes a license allows in its current state. Checked before anything is
//! queued, so a change that cannot succeed never reaches the upstream.

use super::{License, LicenseState, OperationKind, Period};

/// Why a change is not allowed now: a stable reason code and words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Precondition {
    /// Stable UPPER_SNAKE reason.
    pub code: &'static str,
    /// What to do about it.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Result<(), Precondition> {
    Err(Precondition {
        code,
        message: message.into(),
    })
}

impl License {
    /// Whether `change` may be queued for this license now.
    pub fn check_change(&self, change: &OperationKind) -> Result<(), Precondition> {
        use LicenseState as S;
        let state = self.state;
        let wrong_state = |allowed: &str| {
            refuse(
                "INVALID_LICENSE_STATE",
                format!(
                    "license {} is {state}; {} needs it {allowed}",
                    self.id,
                    change.name()
                ),
            )
        };
        if self.upstream_id.is_none() && !matches!(change, OperationKind::Order) {
            return refuse(
                "INVALID_LICENSE_STATE",
                format!(
                    "license {} is {state} and has no upstream license yet",
                    self.id
                ),
            );
        }
        match change {
            OperationKind::Order => Ok(()),
            OperationKind::Renew { .. } => {
                if !matches!(state, S::Active | S::Suspended) {
                    return wrong_state("ACTIVE or SUSPENDED");
                }
                if self.period == Period::Trial {
                    return refuse(
                        "TRIAL_NOT_RENEWABLE",
                        "trial licenses cannot be renewed; change the panel to a paid one",
                    );
                }
                Ok(())
            }
            OperationKind::ChangeIp { ip } => {
                if !matches!(state, S::Active | S::Suspended) {
                    return wrong_state("ACTIVE or SUSPENDED");
                }
                if self.ip.to_string() == *ip {
                    return refuse("SAME_IP", format!("the license is already bound to {ip}"));
                }
                Ok(())
            }
            OperationKind::ChangePanel {
                tariff_id, panel, ..
            } => {
                if !matches!(state, S::Active | S::Suspended) {
                    return wrong_state("ACTIVE or SUSPENDED");
                }
                if self.tariff_id == *tariff_id {
                    return refuse("SAME_PANEL", format!("the license is already {panel}"));
                }
                Ok(())
            }
            OperationKind::Suspend => match state {
                S::Active => Ok(()),
                _ => wrong_state("ACTIVE"),
            },
            OperationKind::Resume => match state {
                S::Suspended => Ok(()),
                _ => wrong_state("SUSPENDED"),
            },
            // A parked license may be cancelled too: the pool gives up what it holds.
            OperationKind::Cancel => match state {
                S::Active | S::Suspended | S::Parked => Ok(()),
                _ => wrong_state("ACTIVE, SUSPENDED or PARKED"),
            },
            OperationKind::ReissueKey { .. } => match state {
                S::Active => Ok(()),
                _ => wrong_state("ACTIVE"),
            },
            OperationKind::Park => match state {
                S::Active | S::Suspended => Ok(()),
                _ => wrong_state("ACTIVE or SUSPENDED"),
            },
            // Taken at an order's acceptance, never queued on a license.
            OperationKind::Reuse { .. } => wrong_state("being ordered"),
            OperationKind::Unpark { ip, .. } => match state {
                S::Parked if ip.as_str() == super::PARKED_IP => {
                    refuse("SAME_IP", format!("the license is parked on {ip} already"))
                }
                S::Parked => Ok(()),
                _ => wrong_state("PARKED"),
            },
        }
    }
}
