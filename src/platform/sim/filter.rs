//! The `where=` filters of the ISPsystem 6 APIs (platforms.md §1): expressions such as
//! `id+EQ+12`, `((consul_id+EQ+X)+AND+(name+EQ+'host_delete'))` and `name+CP+'text'`,
//! with `+` (or a space, once a query string is decoded) between the words.
//!
//! The simulator evaluates them against a row's JSON, so a filter that names a field
//! the row does not have matches nothing, as a typo would on a real platform.

use serde_json::Value;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `field OP value`.
    Compare {
        /// The row's field.
        field: String,
        /// The comparison.
        op: Op,
        /// The literal: a number, or a quoted text.
        value: Literal,
    },
    /// Both sides hold.
    And(Box<Filter>, Box<Filter>),
    /// Either side holds.
    Or(Box<Filter>, Box<Filter>),
}

/// A comparison of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains (text), case-insensitive.
    Cp,
    /// Greater than (numbers).
    Gt,
    /// Less than (numbers).
    Lt,
}

/// The literal of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number.
    Number(f64),
    /// A text (quoted in the filter, or a bare word).
    Text(String),
}

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid where filter: {0}")]
pub struct FilterError(String);

impl Filter {
    /// Parses a filter as sent in the query string (already percent-decoded).
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let filter = parser.expr()?;
        if parser.at != parser.tokens.len() {
            return Err(FilterError(format!(
                "unexpected {:?}",
                parser.tokens[parser.at]
            )));
        }
        Ok(filter)
    }

    /// Whether `row` (a JSON object) matches.
    pub fn matches(&self, row: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(row) && b.matches(row),
            Filter::Or(a, b) => a.matches(row) || b.matches(row),
            Filter::Compare { field, op, value } => {
                let Some(have) = row.get(field) else {
                    return false;
                };
                compare(have, *op, value)
            }
        }
    }
}

fn compare(have: &Value, op: Op, want: &Literal) -> bool {
    let text = match have {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return false,
    };
    let number = have
        .as_f64()
        .or_else(|| text.parse::<f64>().ok())
        .filter(|_| matches!(want, Literal::Number(_)));
    match (op, want, number) {
        (Op::Eq, Literal::Number(w), Some(n)) => n == *w,
        (Op::Ne, Literal::Number(w), Some(n)) => n != *w,
        (Op::Gt, Literal::Number(w), Some(n)) => n > *w,
        (Op::Lt, Literal::Number(w), Some(n)) => n < *w,
        (Op::Eq, Literal::Text(w), _) => text == *w,
        (Op::Ne, Literal::Text(w), _) => text != *w,
        (Op::Cp, Literal::Text(w), _) => text.to_lowercase().contains(&w.to_lowercase()),
        (Op::Cp, Literal::Number(w), _) => text.contains(&w.to_string()),
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            tokens.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '+' | ' ' => flush(&mut word, &mut tokens),
            '(' => {
                flush(&mut word, &mut tokens);
                tokens.push(Token::Open);
            }
            ')' => {
                flush(&mut word, &mut tokens);
                tokens.push(Token::Close);
            }
            '\'' => {
                flush(&mut word, &mut tokens);
                let mut quoted = String::new();
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => quoted.push(c),
                        None => return Err(FilterError("unterminated quote".into())),
                    }
                }
                tokens.push(Token::Quoted(quoted));
            }
            c => word.push(c),
        }
    }
    flush(&mut word, &mut tokens);
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.term()?;
        while let Some(word) = self.peek_word() {
            let combine: fn(Box<Filter>, Box<Filter>) -> Filter = match word.as_str() {
                "AND" => Filter::And,
                "OR" => Filter::Or,
                _ => break,
            };
            self.at += 1;
            let right = self.term()?;
            left = combine(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Filter, FilterError> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.expr()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    other => Err(FilterError(format!("expected ')', found {other:?}"))),
                }
            }
            Some(Token::Word(field)) => {
                let op = match self.next() {
                    Some(Token::Word(op)) => match op.to_ascii_uppercase().as_str() {
                        "EQ" => Op::Eq,
                        "NE" => Op::Ne,
                        "CP" => Op::Cp,
                        "GT" => Op::Gt,
                        "LT" => Op::Lt,
                        other => return Err(FilterError(format!("unknown operator {other}"))),
                    },
                    other => {
                        return Err(FilterError(format!(
                            "expected an operator, found {other:?}"
                        )));
                    }
                };
                let value = match self.next() {
                    Some(Token::Quoted(text)) => Literal::Text(text),
                    Some(Token::Word(word)) => match word.parse::<f64>() {
                        Ok(n) => Literal::Number(n),
                        Err(_) => Literal::Text(word),
                    },
                    other => return Err(FilterError(format!("expected a value, found {other:?}"))),
                };
                Ok(Filter::Compare { field, op, value })
            }
            other => Err(FilterError(format!(
                "expected a condition, found {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_id_filter_matches_that_row_only() {
        let f = Filter::parse("id+EQ+12").unwrap();
        assert!(f.matches(&json!({"id": 12})));
        assert!(!f.matches(&json!({"id": 13})));
        assert!(!f.matches(&json!({"name": "x"})));
    }

    #[test]
    fn compound_filters_with_quotes_and_spaces_are_understood() {
        let f = Filter::parse("((consul_id EQ 7) AND (name EQ 'host_delete'))").unwrap();
        assert!(f.matches(&json!({"consul_id": 7, "name": "host_delete"})));
        assert!(!f.matches(&json!({"consul_id": 7, "name": "host_create"})));
        let f = Filter::parse("name+CP+'Web'+OR+id+GT+100").unwrap();
        assert!(f.matches(&json!({"name": "my-web-1", "id": 1})));
        assert!(f.matches(&json!({"name": "db", "id": 101})));
        assert!(!f.matches(&json!({"name": "db", "id": 100})));
    }

    #[test]
    fn malformed_filters_are_refused() {
        assert!(Filter::parse("id+EQ").is_err());
        assert!(Filter::parse("id+LIKE+3").is_err());
        assert!(Filter::parse("(id+EQ+3").is_err());
        assert!(Filter::parse("name+EQ+'open").is_err());
    }
}
