//! Lists: `size` and `offset` pages, Kuma's `name` (name contains) and
//! `filter[labels.KEY]=VALUE` filters, and the `next` link, which repeats the request's
//! scheme, host, path and every other parameter with the next offset.

use std::collections::BTreeMap;

use aerie_core::ValidationError;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;

use super::ApiError;
use crate::connections::ApiConn;

/// Largest page a list returns (Kuma's limit).
pub const MAX_PAGE: usize = 1000;
pub const DEFAULT_PAGE: usize = 100;

/// A list request: its page, filters and where its `next` link points.
#[derive(Debug)]
pub struct ListRequest {
    size: usize,
    offset: usize,
    name_contains: Option<String>,
    labels: Vec<(String, String)>,
    /// Every query parameter as sent (decoded), in order.
    params: Vec<(String, String)>,
    /// `scheme://host/path` of this request.
    base: String,
}

/// One page of a list.
pub struct Page<T> {
    pub total: usize,
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl ListRequest {
    /// Parses a query string (without `?`); `base` is `scheme://host/path`.
    pub fn parse(query: &str, base: String) -> Result<Self, ApiError> {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let last = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut errs = ValidationError::new();
        let mut number = |name: &str, default: usize| match last(name) {
            None => default,
            Some(s) => s.parse::<usize>().unwrap_or_else(|_| {
                errs.add(name, format!("\"{s}\" is not a non-negative integer"));
                default
            }),
        };
        let size = number("size", DEFAULT_PAGE);
        let offset = number("offset", 0);
        if size == 0 || size > MAX_PAGE {
            errs.add("size", format!("must be between 1 and {MAX_PAGE}"));
        }
        // The last value of a repeated filter wins (as Kuma reads them).
        let mut labels = BTreeMap::new();
        for (k, v) in &params {
            let Some(inner) = k.strip_prefix("filter[") else {
                continue;
            };
            let Some(key) = inner.strip_prefix("labels.") else {
                errs.add(k.as_str(), "filters are only supported on labels");
                continue;
            };
            match key.split_once(']') {
                Some((key, "")) if !key.is_empty() => {
                    labels.insert(key.to_string(), v.clone());
                }
                _ => errs.add(k.as_str(), "advanced filters are not supported"),
            }
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(errs));
        }
        Ok(ListRequest {
            size,
            offset,
            name_contains: last("name").filter(|n| !n.is_empty()).map(str::to_string),
            labels: labels.into_iter().collect(),
            params,
            base,
        })
    }

    /// Whether a resource passes the filters.
    pub fn matches(&self, r: &aerie_core::Resource) -> bool {
        self.name_contains
            .as_deref()
            .is_none_or(|n| r.name().contains(n))
            && self
                .labels
                .iter()
                .all(|(k, v)| r.meta.labels.get(k).is_some_and(|l| l == v))
    }

    /// The requested page of `items` (already filtered). An offset past the end gives an
    /// empty page and no `next`, however large it is.
    pub fn page<T>(&self, items: Vec<T>) -> Page<T> {
        let total = items.len();
        let items: Vec<T> = items
            .into_iter()
            .skip(self.offset)
            .take(self.size)
            .collect();
        let next = self
            .offset
            .checked_add(self.size)
            .filter(|n| *n < total)
            .map(|n| self.link(n));
        Page { total, items, next }
    }

    fn link(&self, offset: usize) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        let mut replaced = false;
        for (k, v) in &self.params {
            if k == "offset" {
                if !replaced {
                    query.append_pair("offset", &offset.to_string());
                    replaced = true;
                }
            } else {
                query.append_pair(k, v);
            }
        }
        if !replaced {
            query.append_pair("offset", &offset.to_string());
        }
        format!("{}?{}", self.base, query.finish())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let conn = parts.extensions.get::<ApiConn>().copied();
        let scheme = if conn.is_some_and(|c| c.tls) {
            "https"
        } else {
            "http"
        };
        // The host the client used, when it is a plain `host[:port]`; else the address the
        // request came in on.
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.contains('@') && h.parse::<axum::http::uri::Authority>().is_ok())
            .map(str::to_string)
            .or_else(|| conn.map(|c| c.local.to_string()))
            .unwrap_or_else(|| "localhost".into());
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| parts.uri.clone());
        let base = format!("{scheme}://{host}{}", uri.path());
        ListRequest::parse(uri.query().unwrap_or(""), base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(q: &str) -> ListRequest {
        ListRequest::parse(q, "https://cp:5682/meshes".into()).unwrap()
    }

    #[test]
    fn a_huge_offset_is_an_empty_last_page() {
        let r = req(&format!("offset={}&size=1000", usize::MAX));
        let p = r.page((0..10).collect::<Vec<_>>());
        assert_eq!((p.total, p.items.len(), p.next), (10, 0, None));
        let r = req(&format!("offset={}&size=5", usize::MAX - 2));
        assert!(r.page((0..10).collect::<Vec<_>>()).next.is_none());
    }

    #[test]
    fn next_keeps_every_other_parameter() {
        let r = req("filter%5Blabels.team%5D=a+b&size=2&name=x&offset=0");
        let p = r.page((0..5).collect::<Vec<_>>());
        assert_eq!(
            p.next.as_deref(),
            Some("https://cp:5682/meshes?filter%5Blabels.team%5D=a+b&size=2&name=x&offset=2")
        );
        let p = req("size=2").page((0..5).collect::<Vec<_>>());
        assert_eq!(
            p.next.as_deref(),
            Some("https://cp:5682/meshes?size=2&offset=2")
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        for (q, field, reason) in [
            ("size=0", "size", "must be between 1 and 1000"),
            ("size=abc", "size", "is not a non-negative integer"),
            ("offset=-1", "offset", "is not a non-negative integer"),
            (
                "offset=99999999999999999999999",
                "offset",
                "is not a non-negative integer",
            ),
            (
                "filter[tags.x]=1",
                "filter[tags.x]",
                "filters are only supported on labels",
            ),
            (
                "filter[labels.x][eq]=1",
                "filter[labels.x][eq]",
                "advanced filters are not supported",
            ),
        ] {
            let e = ListRequest::parse(q, String::new()).unwrap_err();
            assert_eq!(e.invalid[0].field, field, "{q}");
            assert!(
                e.invalid[0].message.contains(reason),
                "{q}: {:?}",
                e.invalid
            );
        }
    }
}
