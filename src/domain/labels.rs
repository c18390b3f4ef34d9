//! A downstream account's own labels of a license: the `licname` and `remoteid` a
//! shop speaking the BILLmanager API gave the item. They belong to the account and
//! are shown back to it only; the license keeps its host name and server id, and the
//! upstream keeps our id as the license's name.

use super::FieldViolation;

/// The longest label kept, in characters.
pub const MAX_LABEL_CHARS: usize = 255;

/// An account's labels of one license; `None`: the account never set that label (its
/// clients see the license's own value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemLabels {
    /// The shop's name of the license (`licname`).
    pub licname: Option<String>,
    /// The shop's id of the service the license is for (`remoteid`).
    pub remoteid: Option<String>,
}

impl ItemLabels {
    /// Refuses a label longer than [`MAX_LABEL_CHARS`] or with control characters,
    /// naming its parameter.
    pub fn check(&self) -> Result<(), FieldViolation> {
        for (field, label) in [("licname", &self.licname), ("remoteid", &self.remoteid)] {
            let Some(label) = label else { continue };
            if label.chars().count() > MAX_LABEL_CHARS {
                return Err(FieldViolation::new(
                    field,
                    format!("must be at most {MAX_LABEL_CHARS} characters"),
                ));
            }
            if label.chars().any(char::is_control) {
                return Err(FieldViolation::new(
                    field,
                    "must not contain control characters",
                ));
            }
        }
        Ok(())
    }

    /// Whether no label is set.
    pub fn is_empty(&self) -> bool {
        self.licname.is_none() && self.remoteid.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_or_control_labels_are_refused_naming_their_parameter() {
        let long = ItemLabels {
            licname: Some("a".repeat(MAX_LABEL_CHARS + 1)),
            remoteid: None,
        };
        assert_eq!(long.check().unwrap_err().field, "licname");
        let control = ItemLabels {
            licname: Some("web1".into()),
            remoteid: Some("l1\n".into()),
        };
        assert_eq!(control.check().unwrap_err().field, "remoteid");
        let fine = ItemLabels {
            licname: Some("ü".repeat(MAX_LABEL_CHARS)),
            remoteid: Some(String::new()),
        };
        assert_eq!(fine.check(), Ok(()));
    }
}
