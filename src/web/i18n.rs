//! The interface's own words, from Fluent message catalogues (`locales/*.ftl`), and
//! choosing the visitor's language: `?lang=`, else `Accept-Language`, else the default.

use actix_web::http::header;
use actix_web::HttpRequest;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::collections::HashMap;
use std::sync::Arc;
use unic_langid::LanguageIdentifier;

/// Languages the interface is translated into.
pub const UI_LANGUAGES: [&str; 4] = ["uk", "kk", "ru", "en"];

const SOURCES: [(&str, &str); 4] = [
    ("en", include_str!("locales/en.ftl")),
    ("uk", include_str!("locales/uk.ftl")),
    ("kk", include_str!("locales/kk.ftl")),
    ("ru", include_str!("locales/ru.ftl")),
];

/// Names of languages in themselves, for the language switcher.
pub fn language_name(code: &str) -> &str {
    match code {
        "uk" => "Українська",
        "kk" => "Қазақша",
        "ru" => "Русский",
        "en" => "English",
        other => other,
    }
}

pub struct Catalog {
    bundles: HashMap<&'static str, FluentBundle<FluentResource>>,
}

impl Catalog {
    /// Builds every bundle; the catalogues are compiled in and checked by the tests.
    pub fn new() -> Catalog {
        let bundles = SOURCES
            .iter()
            .map(|&(lang, source)| {
                let id: LanguageIdentifier = lang.parse().unwrap_or_default();
                let mut bundle = FluentBundle::new_concurrent(vec![id]);
                // Bidi isolation marks would show up as stray characters in plain text.
                bundle.set_use_isolating(false);
                let resource =
                    FluentResource::try_new(source.to_owned()).unwrap_or_else(|(r, _)| r);
                let _ = bundle.add_resource(resource);
                (lang, bundle)
            })
            .collect();
        Catalog { bundles }
    }

    /// The message `id` in `lang` (English when missing there), with numeric arguments.
    pub fn text(&self, lang: &str, id: &str, args: &[(&str, f64)]) -> String {
        let mut fluent_args = FluentArgs::new();
        for &(k, v) in args {
            fluent_args.set(k, FluentValue::from(v));
        }
        self.format(lang, id, &fluent_args)
    }

    /// Like `text`, with one string argument.
    pub fn text_with(&self, lang: &str, id: &str, name: &str, value: &str) -> String {
        self.text_args(lang, id, &[(name, Arg::Text(value))])
    }

    /// Like `text`, with numbers and strings mixed.
    pub fn text_args(&self, lang: &str, id: &str, args: &[(&str, Arg)]) -> String {
        let mut fluent_args = FluentArgs::new();
        for (k, v) in args {
            match v {
                Arg::Number(n) => fluent_args.set(*k, FluentValue::from(*n)),
                Arg::Text(t) => fluent_args.set(*k, FluentValue::from((*t).to_owned())),
            }
        }
        self.format(lang, id, &fluent_args)
    }

    fn format(&self, lang: &str, id: &str, args: &FluentArgs) -> String {
        for candidate in [lang, "en"] {
            let Some(bundle) = self.bundles.get(candidate) else {
                continue;
            };
            if let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) {
                let mut errors = Vec::new();
                return bundle
                    .format_pattern(pattern, Some(args), &mut errors)
                    .into_owned();
            }
        }
        id.to_owned()
    }
}

/// A message argument: a number (plural rules apply to it) or a text.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Number(f64),
    Text(&'a str),
}

/// The interface words of one page in its interface language, for templates:
/// `{{ t.get("sign-in") }}`.
pub struct Words {
    catalog: Arc<Catalog>,
    lang: &'static str,
}

impl Words {
    /// The words for content in `lang`: that language if translated, else English.
    pub fn new(catalog: &Arc<Catalog>, lang: &str) -> Words {
        Words {
            catalog: Arc::clone(catalog),
            lang: ui_language(lang),
        }
    }

    pub fn get(&self, id: &str) -> String {
        self.catalog.text(self.lang, id, &[])
    }

    pub fn with(&self, id: &str, args: &[(&str, Arg)]) -> String {
        self.catalog.text_args(self.lang, id, args)
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new()
    }
}

/// The interface language for content in `lang`: itself if translated, else English.
pub fn ui_language(lang: &str) -> &'static str {
    UI_LANGUAGES
        .iter()
        .find(|l| **l == lang)
        .copied()
        .unwrap_or("en")
}

pub fn accept_language(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
}

/// The language of a page that belongs to no one form: `?lang=`, else the browser's
/// choice among the interface languages, else English.
pub fn interface_language(req: &HttpRequest, query: Option<&str>) -> String {
    negotiate(query, accept_language(req), &UI_LANGUAGES, "en")
}

/// Picks one of `available`: the `?lang=` value, else the best `Accept-Language` match
/// (by q-value, primary subtag), else `default`.
pub fn negotiate(
    query: Option<&str>,
    accept: Option<&str>,
    available: &[&str],
    default: &str,
) -> String {
    if let Some(lang) = query.filter(|l| available.contains(l)) {
        return lang.to_owned();
    }
    let mut ranked: Vec<(f32, String)> = accept
        .unwrap_or_default()
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next()?.trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next()?.to_owned();
            (q > 0.0).then_some((q, primary))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked
        .into_iter()
        .find(|(_, tag)| available.contains(&tag.as_str()))
        .map_or_else(|| default.to_owned(), |(_, tag)| tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_parses_and_has_every_message() {
        let english: Vec<&str> = SOURCES[0]
            .1
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
            .filter(|k| !k.starts_with(' '))
            .collect();
        for (lang, source) in SOURCES {
            assert!(
                FluentResource::try_new(source.to_owned()).is_ok(),
                "{lang} parses"
            );
            for key in &english {
                assert!(
                    source.lines().any(|l| l.starts_with(&format!("{key} ="))),
                    "{lang} lacks {key}"
                );
            }
        }
        let c = Catalog::new();
        assert_eq!(c.text("uk", "submit", &[]), "Надіслати відповіді");
        assert_eq!(
            c.text("en", "error-min", &[("min", 14.0)]),
            "Please enter 14 or more."
        );
        assert_eq!(
            c.text("en", "error-summary-title", &[("count", 1.0)]),
            "There is a problem with 1 answer"
        );
        assert_eq!(c.text("de", "submit", &[]), "Send my answers");
        let summary = |lang, count| {
            c.text_args(
                lang,
                "dash-summary",
                &[
                    ("count", Arg::Number(count)),
                    ("by_sex", Arg::Text("Жінка 3, Чоловік 2")),
                    ("min", Arg::Number(5.0)),
                ],
            )
        };
        assert_eq!(
            summary("uk", 5.0),
            "5 відповідей: Жінка 3, Чоловік 2. Малі групи (менше ніж 5 респондентів) приховано."
        );
        assert!(summary("uk", 2.0).starts_with("2 відповіді:"));
        assert!(summary("ru", 21.0).starts_with("21 ответ:"));
        assert!(summary("en", 1.0).starts_with("1 response:"));
    }

    #[test]
    fn language_is_query_then_header_then_default() {
        let available = ["uk", "en"];
        assert_eq!(negotiate(Some("en"), Some("uk"), &available, "uk"), "en");
        assert_eq!(
            negotiate(Some("fr"), Some("en-GB,uk;q=0.5"), &available, "uk"),
            "en"
        );
        assert_eq!(
            negotiate(None, Some("ru;q=0.9, uk;q=0.8, en;q=0.1"), &available, "en"),
            "uk"
        );
        assert_eq!(negotiate(None, Some("de"), &available, "uk"), "uk");
        assert_eq!(negotiate(None, None, &available, "uk"), "uk");
    }
}
