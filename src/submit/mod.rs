//! Submissions: validate answers against the form, turn them into a stored row, and
//! store it through the single group-commit writer.

mod record;
mod text;
mod validate;
mod writer;

pub use record::{build_row, encode_analysis};
pub use text::answers_from_text;
pub use validate::{validate, Answer, FieldError, ValidAnswers};
pub use writer::{store_batch, FormLookup, Stored, Writer};
