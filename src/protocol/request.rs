//! The request side: parameters from the query and a form body (`func`, `out`,
//! `elid`, `sok`, …) and the helpers every function uses to read them, refusing with
//! the shop's own `missed` / `value` errors.

use std::collections::BTreeMap;

use super::ApiError;

/// Request parameters (query and form merged); a later duplicate wins.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    /// The trimmed value of `name`, if present and non-empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::missed(name))
    }

    /// `sok` present and non-empty: the request commits.
    pub(crate) fn sok(&self) -> bool {
        self.get("sok").is_some()
    }

    pub(crate) fn parse<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| ApiError::value(name, v, format!("Invalid value of '{name}'")))
            })
            .transpose()
    }

    pub(crate) fn require_parsed<T: std::str::FromStr>(&self, name: &str) -> Result<T, ApiError> {
        self.parse(name)?.ok_or_else(|| ApiError::missed(name))
    }

    /// `elid`, which group operations send as a `", "`-separated list.
    pub(crate) fn elids(&self) -> Result<Vec<u64>, ApiError> {
        let raw = self.require("elid")?;
        raw.split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| ApiError::value("elid", raw, "Invalid id"))
            })
            .collect()
    }

    pub(crate) fn elid(&self) -> Result<u64, ApiError> {
        let ids = self.elids()?;
        match ids.as_slice() {
            [one] => Ok(*one),
            _ => Err(ApiError::value(
                "elid",
                self.get("elid").unwrap_or_default(),
                "One id expected",
            )),
        }
    }

    /// `pricelist`, tolerating the trailing `;` of the documentation's example URL.
    pub(crate) fn pricelist(&self) -> Result<u32, ApiError> {
        let raw = self.require("pricelist")?;
        raw.trim_end_matches(';')
            .trim()
            .parse()
            .map_err(|_| ApiError::value("pricelist", raw, format!("Unknown tariff plan {raw}")))
    }

    /// `addon_<id>=<n>` pairs.
    pub(crate) fn addons(&self) -> Result<BTreeMap<u32, u32>, ApiError> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(id) = k.strip_prefix("addon_") else {
                continue;
            };
            let bad = || ApiError::value(k, v, format!("Invalid value of '{k}'"));
            let id: u32 = id.parse().map_err(|_| bad())?;
            let n: u32 = v.trim().parse().map_err(|_| bad())?;
            out.insert(id, n);
        }
        Ok(out)
    }
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte).
pub(crate) fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::parse_urlencoded;

    #[test]
    fn decodes_plus_percent_and_bare_keys() {
        let got = parse_urlencoded("func=soft.edit&licname=a+b%3Bc&sok&bad=%zz&x=%4");
        let want = [
            ("func", "soft.edit"),
            ("licname", "a b;c"),
            ("sok", ""),
            ("bad", "%zz"),
            ("x", "%4"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
