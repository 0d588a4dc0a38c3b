//! Form definitions: the file format, the checked in-memory form, and the registry of
//! every form loaded from `forms/`.

pub mod expr;
mod load;
mod model;
pub mod xlsform;
pub mod xlsform_export;

pub use load::{
    check_file, definition_json, from_definition, is_slug, load_dir, load_file, load_str,
    parse_yaml, to_yaml, FileKind, LoadReport, Locate, Location, Problem, Severity,
};
pub use model::*;

use std::collections::BTreeMap;
use std::sync::Arc;

/// Every form loaded at start, keyed by id.
#[derive(Debug, Default)]
pub struct FormRegistry {
    forms: BTreeMap<String, Arc<Form>>,
}

impl FormRegistry {
    pub fn new(forms: impl IntoIterator<Item = Form>) -> Self {
        FormRegistry {
            forms: forms
                .into_iter()
                .map(|f| (f.id.clone(), Arc::new(f)))
                .collect(),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Form>> {
        self.forms.get(id).cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Form>> {
        self.forms.values()
    }
}
