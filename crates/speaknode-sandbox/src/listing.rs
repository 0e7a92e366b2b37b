//! The REST API's lists: binding their query strings as ASP.NET's model binding does, and
//! the one page envelope every list answers with (`fixtures/*-page.json`).

use std::collections::BTreeMap;

use axum::{
    extract::{FromRequestParts, Query},
    http::request::Parts,
};
use serde::{Serialize, Serializer, ser::Error as _};
use time::{
    Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description,
};
use uuid::Uuid;

use crate::{
    error::Error,
    model::{Conversation, Status, Timestamp},
};

/// Items per page when the caller does not say.
const DEFAULT_PAGE_SIZE: u32 = 20;
/// The largest page a caller may ask for.
const MAX_PAGE_SIZE: u32 = 100;

/// One page of a list, with what a client needs to ask for the others.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub page_size: u32,
    pub total_count: usize,
    pub total_pages: usize,
}

/// Which page a caller asked for: `page` from 1, `page_size` in 1..=100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub page: u32,
    pub page_size: u32,
}

impl PageRequest {
    /// The requested page of `all`, already in list order, each item made by `item`. A page
    /// past the end is empty, not an error, as paging through a shrinking list can reach it.
    pub(crate) fn of<T, U>(self, all: &[T], item: impl FnMut(&T) -> U) -> Page<U> {
        let size = self.page_size as usize;
        let skip = (self.page as usize).saturating_sub(1).saturating_mul(size);
        Page {
            items: all.iter().skip(skip).take(size).map(item).collect(),
            page: self.page,
            page_size: self.page_size,
            total_count: all.len(),
            total_pages: all.len().div_ceil(size),
        }
    }
}

/// Which conversations a caller asked for. Parameters combine with AND, statuses with OR.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ConversationFilter {
    pub agent_id: Option<Uuid>,
    pub statuses: Vec<Status>,
    /// Created at or after this instant.
    pub from: Option<Timestamp>,
    /// Created before this instant.
    pub to: Option<Timestamp>,
}

impl ConversationFilter {
    pub(crate) fn admits(&self, conversation: &Conversation) -> bool {
        self.agent_id.is_none_or(|id| conversation.agent_id == id)
            && (self.statuses.is_empty() || self.statuses.contains(&conversation.status))
            && self.from.is_none_or(|from| conversation.created_at >= from)
            && self.to.is_none_or(|to| conversation.created_at < to)
    }
}

/// A conversation as lists show it: every member of the conversation object but `history`,
/// which only `GET /api/v1/conversations/{id}` returns.
pub(crate) struct Listed(pub Conversation);

impl Serialize for Listed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(&self.0).map_err(S::Error::custom)?;
        if let Some(members) = value.as_object_mut() {
            members.remove("history");
        }
        value.serialize(serializer)
    }
}

/// The query string of a list route as name–value pairs. Its rejection (a query that is
/// not form-urlencoded) is a 400 problem.
pub(crate) struct ListQuery(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Error::BadRequest(rejection.body_text()))?;
        Ok(Self(pairs))
    }
}

impl ListQuery {
    #[cfg(test)]
    fn of(query: &str) -> Self {
        Self(
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// The page of a list without filters.
    pub(crate) fn page(&self) -> Result<PageRequest, Error> {
        let mut binder = Binder::new(&self.0);
        let page = binder.page();
        binder.finish(page)
    }

    /// The page and filter of `GET /api/v1/conversations`.
    pub(crate) fn conversations(&self) -> Result<(PageRequest, ConversationFilter), Error> {
        let mut binder = Binder::new(&self.0);
        let page = binder.page();
        let mut filter = ConversationFilter {
            agent_id: binder
                .first("agent_id")
                .and_then(|text| binder.parse("agent_id", text, |t| Uuid::parse_str(t).ok())),
            statuses: binder.statuses(),
            from: binder.instant("from"),
            to: binder.instant("to"),
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            binder.fail("to", "The field to must not be earlier than from.".into());
            filter.to = None;
        }
        binder.finish((page, filter))
    }
}

/// Binds query parameters one by one and collects every error, so that one 400 names
/// them all, as ASP.NET's `ModelState` does.
struct Binder<'a> {
    pairs: &'a [(String, String)],
    errors: BTreeMap<String, Vec<String>>,
}

impl<'a> Binder<'a> {
    fn new(pairs: &'a [(String, String)]) -> Self {
        Self {
            pairs,
            errors: BTreeMap::new(),
        }
    }

    fn fail(&mut self, name: &str, message: String) {
        self.errors
            .entry(name.to_owned())
            .or_default()
            .push(message);
    }

    fn finish<T>(self, value: T) -> Result<T, Error> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(Error::InvalidQuery(self.errors))
        }
    }

    /// Every value of `name`. ASP.NET matches query keys ignoring case, and an empty value
    /// binds as if the parameter were absent.
    fn values(&self, name: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let name = name.to_owned();
        self.pairs
            .iter()
            .filter(move |(key, value)| key.eq_ignore_ascii_case(&name) && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// The value a simple parameter binds to: the first, as ASP.NET's `FirstValue`.
    fn first(&self, name: &str) -> Option<&'a str> {
        self.values(name).next()
    }

    /// `text` parsed by `parse`, or an error of `name` in ASP.NET's words.
    fn parse<T>(
        &mut self,
        name: &str,
        text: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let value = parse(text.trim());
        if value.is_none() {
            self.fail(name, format!("The value '{text}' is not valid for {name}."));
        }
        value
    }

    fn int(&mut self, name: &str, default: u32, range: (u32, u32)) -> u32 {
        let Some(text) = self.first(name) else {
            return default;
        };
        // ASP.NET binds an `int`: anything else is a binding error, a number out of range a
        // `[Range]` error.
        let Some(value) = self.parse(name, text, |t| t.parse::<i32>().ok()) else {
            return default;
        };
        match u32::try_from(value) {
            Ok(value) if (range.0..=range.1).contains(&value) => value,
            _ => {
                let (low, high) = range;
                self.fail(
                    name,
                    format!("The field {name} must be between {low} and {high}."),
                );
                default
            }
        }
    }

    fn page(&mut self) -> PageRequest {
        PageRequest {
            page: self.int("page", 1, (1, i32::MAX.unsigned_abs())),
            page_size: self.int("page_size", DEFAULT_PAGE_SIZE, (1, MAX_PAGE_SIZE)),
        }
    }

    /// `status` values, repeated (`status=Active&status=Failed`) or comma-separated
    /// (`status=Active,Failed`), matched ignoring case as ASP.NET binds enums.
    fn statuses(&mut self) -> Vec<Status> {
        let texts: Vec<&str> = self
            .values("status")
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .collect();
        let mut statuses = Vec::new();
        for text in texts {
            let status = self.parse("status", text, |t| {
                Status::ALL
                    .into_iter()
                    .find(|status| status.name().eq_ignore_ascii_case(t))
            });
            if let Some(status) = status
                && !statuses.contains(&status)
            {
                statuses.push(status);
            }
        }
        statuses
    }

    fn instant(&mut self, name: &str) -> Option<Timestamp> {
        let text = self.first(name)?;
        self.parse(name, text, parse_instant)
    }
}

/// An ISO 8601 instant: RFC 3339 with an offset (`2026-11-29T08:30:00Z`,
/// `…+01:00`), or a date alone, meaning its midnight UTC (`2026-11-29`).
fn parse_instant(text: &str) -> Option<Timestamp> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Timestamp::in_utc(at);
    }
    let date = Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
    Timestamp::in_utc(date.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(result: Result<impl std::fmt::Debug, Error>) -> BTreeMap<String, Vec<String>> {
        match result {
            Err(Error::InvalidQuery(errors)) => errors,
            other => panic!("expected a query error, got {other:?}"),
        }
    }

    #[test]
    fn pages_default_to_the_first_twenty() -> Result<(), Error> {
        let page = ListQuery::of("").page()?;
        assert_eq!(
            page,
            PageRequest {
                page: 1,
                page_size: 20
            }
        );
        let page = ListQuery::of("PAGE=3&Page_Size=100&unknown=x&page=9").page()?;
        assert_eq!(
            page,
            PageRequest {
                page: 3,
                page_size: 100
            }
        );
        Ok(())
    }

    #[test]
    fn bad_pages_name_every_parameter() {
        let errors = errors_of(ListQuery::of("page=0&page_size=101").page());
        assert_eq!(
            errors["page"],
            ["The field page must be between 1 and 2147483647."]
        );
        assert_eq!(
            errors["page_size"],
            ["The field page_size must be between 1 and 100."]
        );
        let errors = errors_of(ListQuery::of("page=abc&page_size=0").page());
        assert_eq!(errors["page"], ["The value 'abc' is not valid for page."]);
        assert_eq!(errors["page_size"].len(), 1);
        let errors = errors_of(ListQuery::of("page=99999999999").page());
        assert!(errors.contains_key("page"));
    }

    #[test]
    fn a_page_slices_the_list() {
        let all: Vec<u32> = (1..=45).collect();
        let request = |page, page_size| PageRequest { page, page_size };
        let page = request(3, 20).of(&all, |n| *n);
        assert_eq!(page.items, [41, 42, 43, 44, 45]);
        assert_eq!((page.total_count, page.total_pages), (45, 3));
        assert!(request(4, 20).of(&all, |n| *n).items.is_empty());
        let empty = request(1, 20).of(&[] as &[u32], |n| *n);
        assert_eq!((empty.total_count, empty.total_pages), (0, 0));
        let far = request(u32::MAX, 100).of(&all, |n| *n);
        assert!(far.items.is_empty());
    }

    #[test]
    fn statuses_come_repeated_or_comma_separated_in_any_case() -> Result<(), Error> {
        let (_, filter) =
            ListQuery::of("status=active,Completed&STATUS=failed&status=Active").conversations()?;
        assert_eq!(
            filter.statuses,
            [Status::Active, Status::Completed, Status::Failed]
        );
        let errors = errors_of(ListQuery::of("status=Active,Done").conversations());
        assert_eq!(
            errors["status"],
            ["The value 'Done' is not valid for status."]
        );
        Ok(())
    }

    #[test]
    fn dates_are_rfc3339_or_whole_days() -> Result<(), Error> {
        let (_, filter) = ListQuery::of(
            "from=2026-11-29&to=2026-11-29T08:30:00.1234567Z&agent_id=7c9e6679-7425-40de-944b-e07fc1f90ae7",
        )
        .conversations()?;
        assert!(filter.from.is_some() && filter.to.is_some());
        assert!(filter.agent_id.is_some());
        assert!(
            parse_instant("2026-11-29T09:30:00+01:00") == parse_instant("2026-11-29T08:30:00Z")
        );
        // Regression: an offset that moves the instant past year 9999 is a bad value,
        // not a panic.
        assert_eq!(parse_instant("9999-12-31T23:00:00-02:00"), None);
        let errors =
            errors_of(ListQuery::of("from=yesterday&to=2026-13-01&agent_id=ava").conversations());
        let members: Vec<_> = errors.keys().map(String::as_str).collect();
        assert_eq!(members, ["agent_id", "from", "to"]);
        let errors = errors_of(ListQuery::of("from=2026-11-30&to=2026-11-29").conversations());
        assert!(errors.contains_key("to"));
        Ok(())
    }
}
