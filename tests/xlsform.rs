//! XLSForm import and export: the compatibility corpus file by file, round trips in
//! both directions, pyxform accepting exported workbooks, and refusals that name the
//! sheet and row.

use genderlens::form::{self, xlsform_export, Form, FormFile, QuestionType, Severity, Text};
use rust_xlsxwriter::Workbook;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Writes a workbook with the given sheets (first row: headers; empty cells skipped).
fn write_workbook(path: &Path, sheets: &[(&str, &[&[&str]])]) {
    let mut book = Workbook::new();
    for (name, rows) in sheets {
        let sheet = book.add_worksheet();
        sheet.set_name(*name).expect("sheet name");
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                if !cell.is_empty() {
                    sheet
                        .write_string(r as u32, c as u16, *cell)
                        .expect("write cell");
                }
            }
        }
    }
    book.save(path).expect("save workbook");
}

fn errors(problems: &[form::Problem]) -> Vec<String> {
    problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(ToString::to_string)
        .collect()
}

fn load_ok(path: &Path) -> Form {
    let (form, problems) = form::load_file(path);
    let errors = errors(&problems);
    assert!(
        errors.is_empty(),
        "{}:\n{}",
        path.display(),
        errors.join("\n")
    );
    form.expect("form")
}

// ---------------------------------------------------------------- the corpus

enum Expect {
    Imports,
    /// Refused, with an error containing each of these (sheet, row and reason).
    Refused(&'static [&'static str]),
}
use Expect::*;

const NO_SEX: &str = "sheet `survey`: no sex question";

/// Every workbook of `shared/xlsforms`, and what must happen to it.
const CORPUS: &[(&str, Expect)] = &[
    (
        "field/health.xls",
        Refused(&[
            "sheet `survey`, row 3: column `trigger`: `trigger` (recalculating on another answer) is not supported",
            "sheet `survey`, row 8: choice list `yes_no` is not in sheet `choices`",
            "sheet `survey`, row 14: `calculation` on a `select_one yes_no` question",
            NO_SEX,
        ]),
    ),
    (
        "field/simple_building_survey_wildfires.xlsx",
        Refused(&[
            "sheet `survey`, row 12: type `start-geopoint` (`warmup`): location questions are not supported",
            "sheet `survey`, row 17: question `name`: `relevant` does not parse: unexpected character `’`",
            "sheet `survey`, row 18: `default` `${last-saved#building_material}` is an expression",
            "sheet `survey`, row 22: column `choice_filter`: choice filters",
            NO_SEX,
        ]),
    ),
    (
        "field/slum_assessment_survey.xlsx",
        Refused(&[
            "sheet `survey`, row 28: no sex question",
            "perhaps `a8_respondent_gender` (row 28)",
            "sheet `survey`, row 37: type `image` (`a15_family_photo`): file and media uploads are not supported",
            "sheet `survey`, row 54: `begin repeat` `hhmemb_repeat` is not supported",
        ]),
    ),
    (
        "pyxform/attribute_columns_test.xlsx",
        Refused(&[
            "sheet `survey`, row 9: column `image`: media (images) are not supported",
            "sheet `survey`, row 15: `begin repeat` `repeat_test` is not supported",
            "sheet `survey`, row 32: type `time` (`time_test`)",
            "sheet `survey`, row 34: type `geopoint` (`geopoint_test`)",
            "sheet `choices`, row 4: choice `a` of list `a_b`: media (image) are not supported",
            NO_SEX,
        ]),
    ),
    (
        "pyxform/bad_calc.xlsx",
        Refused(&[
            "sheet `survey`, row 2: question `badcalc`: `calculation` does not parse",
            NO_SEX,
        ]),
    ),
    (
        "pyxform/case_insensitivity.xlsx",
        Refused(&[
            "sheet `survey`, row 3: column `choice_filter`",
            "sheet `survey`, row 3: type `select_one_external c1` (`q2`): external choices",
            "sheet `survey`, row 4: type `osm c1` (`q3`)",
            NO_SEX,
        ]),
    ),
    (
        "pyxform/choice_filter_test.xlsx",
        Refused(&[
            "sheet `survey`, row 3: column `choice_filter`: choice filters (cascading selects) are not supported",
            "sheet `choices`, row 6: choice `king` appears twice in list `counties`",
            NO_SEX,
        ]),
    ),
    ("pyxform/extra_columns.xlsx", Refused(&[NO_SEX])),
    ("pyxform/extra_sheet_names.xlsx", Refused(&[NO_SEX])),
    ("pyxform/field-list.xlsx", Refused(&[NO_SEX])),
    (
        "pyxform/flat_xlsform_test.xlsx",
        Refused(&[
            "sheet `survey`, row 9: column `video`: media (video) is not supported",
            "sheet `survey`, row 32: type `time` (`time_test`)",
            "sheet `choices`, row 4: choice `a` of list `a_b`: media (image) are not supported",
            "sheet `settings`, row 2: column `public_key`: ODK encrypts responses",
            NO_SEX,
        ]),
    ),
    (
        "pyxform/group.xlsx",
        Refused(&["sheet `survey`, row 4: unknown type `phone number`", NO_SEX]),
    ),
    (
        "pyxform/include.xlsx",
        Refused(&["sheet `survey`, row 3: type `include` (`yes_or_no_question`)"]),
    ),
    (
        "pyxform/include_json.xlsx",
        Refused(&["sheet `survey`, row 2: type `include` (`how_old_are_you`)"]),
    ),
    (
        "pyxform/loop.xlsx",
        Refused(&["sheet `survey`, row 3: `begin loop` `loop_toilet_types` is not supported"]),
    ),
    (
        "pyxform/or_other.xlsx",
        Refused(&["sheet `survey`, row 3: column `choice_filter`", NO_SEX]),
    ),
    (
        "pyxform/pull_data.xlsx",
        Refused(&[
            "sheet `survey`, row 2: question `fruit`: `calculation` does not parse: unknown function `pulldata`",
        ]),
    ),
    ("pyxform/specify_other.xlsx", Imports),
    (
        "pyxform/survey_no_name.xlsx",
        Refused(&["not an XLSForm: the workbook has no sheet `survey` (it has `Sheet1`)"]),
    ),
    ("pyxform/text_and_integer.xlsx", Refused(&[NO_SEX])),
    (
        "pyxform/xlsform_spec_test.xlsx",
        Refused(&[
            "sheet `survey`, row 15: `begin repeat` `repeat_test` is not supported",
            "sheet `survey`, row 33: type `datetime` (`datetime_test`)",
            NO_SEX,
        ]),
    ),
    ("pyxform/yes_or_no_question.xlsx", Refused(&[NO_SEX])),
];

/// Errors that must not appear: each was once given for something that is fine.
const NEVER: &[(&str, &str)] = &[
    // `24/7` is a value pyxform accepts.
    ("field/health.xls", "`24/7`"),
    // The list's choices have images but no labels: the images are refused, not the list.
    (
        "pyxform/flat_xlsform_test.xlsx",
        "`a_b` is not in sheet `choices`",
    ),
    ("pyxform/flat_xlsform_test.xlsx", "`a_b` does not exist"),
    // A hint only in Chinese is shown in Chinese, with a warning.
    ("pyxform/flat_xlsform_test.xlsx", "the hint has no text"),
    ("pyxform/xlsform_spec_test.xlsx", "the hint has no text"),
];

#[test]
fn corpus_every_workbook_imports_or_is_refused_with_sheet_row_and_reason() {
    let dir = repo("../shared/xlsforms");
    if !dir.is_dir() {
        eprintln!("skipped: the corpus folder {} is absent", dir.display());
        return;
    }
    // The table covers the folder exactly: a new workbook needs an expected outcome.
    let mut found = Vec::new();
    for sub in ["field", "pyxform"] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("corpus folder") {
            let path = entry.expect("entry").path();
            if form::FileKind::of(&path) == Some(form::FileKind::Workbook) {
                let name = path.file_name().expect("name").to_string_lossy();
                found.push(format!("{sub}/{name}"));
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "the corpus table must list every workbook");

    let mut failures = Vec::new();
    for (file, expect) in CORPUS {
        let (form, problems) = form::load_file(&dir.join(file));
        let errors = errors(&problems);
        match (expect, &form) {
            (Imports, Some(form)) if errors.is_empty() => {
                println!("{file}: imported as `{}`", form.id);
            }
            (Imports, _) => failures.push(format!(
                "{file}: expected to import, refused:\n  {}",
                errors.join("\n  ")
            )),
            (Refused(needles), None) => {
                println!(
                    "{file}: refused ({} errors), first: {}",
                    errors.len(),
                    errors.first().map_or("", String::as_str)
                );
                for needle in *needles {
                    if !errors.iter().any(|e| e.contains(needle)) {
                        failures.push(format!(
                            "{file}: no error contains {needle:?}; errors:\n  {}",
                            errors.join("\n  ")
                        ));
                    }
                }
            }
            (Refused(_), Some(_)) => {
                failures.push(format!("{file}: expected a refusal, it loaded"))
            }
        }
        for (_, never) in NEVER.iter().filter(|(f, _)| f == file) {
            if let Some(e) = errors.iter().find(|e| e.contains(never)) {
                failures.push(format!("{file}: an error contains {never:?}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------- the corpus, with a sex question

/// The cells of a sheet as text, by absolute (row, column), 0-based.
type Cells = std::collections::BTreeMap<(u32, u32), calamine::Data>;

fn read_sheets(path: &Path) -> Vec<(String, Cells)> {
    use calamine::Reader;
    let mut book = calamine::open_workbook_auto(path).expect("open workbook");
    let names = book.sheet_names();
    names
        .into_iter()
        .map(|name| {
            let range = book.worksheet_range(&name).expect("sheet");
            let (r0, c0) = range.start().unwrap_or((0, 0));
            let cells = range
                .used_cells()
                .filter(|(_, _, d)| !matches!(d, calamine::Data::Empty))
                .map(|(r, c, d)| ((r0 + r as u32, c0 + c as u32), d.clone()))
                .collect();
            (name, cells)
        })
        .collect()
}

fn cell_text(d: &calamine::Data) -> String {
    match d {
        calamine::Data::Float(f) if f.fract() == 0.0 => format!("{}", *f as i64),
        other => other.to_string().trim().to_owned(),
    }
}

/// A sheet as (header → column) and its rows below the header, each (row number as the
/// spreadsheet shows it, column → text).
struct Table {
    columns: Vec<(String, u32)>,
    rows: Vec<(u32, std::collections::BTreeMap<u32, String>)>,
}

impl Table {
    fn of(cells: &Cells) -> Table {
        let header = cells.keys().map(|(r, _)| *r).min().unwrap_or(0);
        let columns = cells
            .iter()
            .filter(|((r, _), _)| *r == header)
            .map(|((_, c), d)| (cell_text(d).to_ascii_lowercase(), *c))
            .collect();
        let mut rows: std::collections::BTreeMap<u32, std::collections::BTreeMap<u32, String>> =
            Default::default();
        for ((r, c), d) in cells.range((header + 1, 0)..) {
            let text = cell_text(d);
            if !text.is_empty() {
                rows.entry(*r).or_default().insert(*c, text);
            }
        }
        Table {
            columns,
            rows: rows.into_iter().map(|(r, cells)| (r + 1, cells)).collect(),
        }
    }

    fn col(&self, names: &[&str]) -> Option<u32> {
        self.columns
            .iter()
            .find(|(h, _)| names.contains(&h.as_str()))
            .map(|(_, c)| *c)
    }

    /// Columns whose header is `base`, `base::Language` or `base:language`.
    fn translated(&self, base: &str) -> Vec<u32> {
        self.columns
            .iter()
            .filter(|(h, _)| h == base || h.starts_with(&format!("{base}:")))
            .map(|(_, c)| *c)
            .collect()
    }
}

/// Copies a workbook cell by cell, appending a `select_one` named `sex` to sheet
/// `survey` and its choices (female, male) to sheet `choices`, labelled in every label
/// column, so the contract's rule finds it.
fn with_sex_question(from: &Path, to: &Path) {
    let mut book = Workbook::new();
    let sheets = read_sheets(from);
    let has_choices = sheets
        .iter()
        .any(|(n, _)| n.trim().eq_ignore_ascii_case("choices"));
    let extra = (!has_choices).then(|| ("choices".to_owned(), Cells::new()));
    for (name, mut cells) in sheets.into_iter().chain(extra) {
        let is_choices = name.trim().eq_ignore_ascii_case("choices");
        if is_choices && cells.is_empty() {
            for (c, h) in ["list_name", "name", "label"].iter().enumerate() {
                cells.insert((0, c as u32), calamine::Data::String((*h).to_owned()));
            }
        }
        let table = Table::of(&cells);
        let next = table.rows.last().map_or_else(
            || cells.keys().map(|(r, _)| *r + 1).max().unwrap_or(1),
            |(r, _)| *r,
        );
        let mut put = |col: Option<u32>, text: &str, row: u32| {
            if let Some(c) = col {
                cells.insert((row, c), calamine::Data::String(text.to_owned()));
            }
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "survey" => {
                put(table.col(&["type"]), "select_one genderlens_sex", next);
                put(table.col(&["name"]), "sex", next);
                for c in table.translated("label") {
                    put(Some(c), "Sex", next);
                }
            }
            "choices" => {
                for (i, value) in ["female", "male"].into_iter().enumerate() {
                    let row = next + i as u32;
                    put(
                        table.col(&["list_name", "list name"]),
                        "genderlens_sex",
                        row,
                    );
                    put(table.col(&["name"]), value, row);
                    for c in table.translated("label") {
                        put(Some(c), value, row);
                    }
                }
            }
            _ => {}
        }
        let sheet = book.add_worksheet();
        sheet.set_name(&name).expect("sheet name");
        for ((r, c), d) in &cells {
            let (r, c) = (*r, *c as u16);
            match d {
                calamine::Data::Float(f) => sheet.write_number(r, c, *f).map(|_| ()),
                calamine::Data::Int(i) => sheet.write_number(r, c, *i as f64).map(|_| ()),
                calamine::Data::Bool(b) => sheet.write_boolean(r, c, *b).map(|_| ()),
                other => sheet.write_string(r, c, other.to_string()).map(|_| ()),
            }
            .expect("write cell");
        }
    }
    book.save(to).expect("save workbook");
}

/// Compares an imported form with the workbook's own cells, read here without the
/// importer: every named survey row is a question of the form (in the same order and
/// group) unless a notice names its row, each label cell is one of the question's
/// label texts, `relevant` is kept verbatim and `constraint` too where no bound was
/// taken out of it, and each list has the sheet's values in the sheet's order.
fn assert_same_as_cells(path: &Path, form: &Form, problems: &[form::Problem]) {
    let sheets = read_sheets(path);
    let sheet = |want: &str| {
        sheets
            .iter()
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(want))
            .map(|(_, cells)| Table::of(cells))
    };
    let survey = sheet("survey").expect("survey");
    let (ty, name) = (survey.col(&["type"]), survey.col(&["name"]));
    let get = |cells: &std::collections::BTreeMap<u32, String>, col: Option<u32>| {
        col.and_then(|c| cells.get(&c)).cloned()
    };
    let mut groups: Vec<String> = Vec::new();
    let mut order = Vec::new();
    for (row, cells) in &survey.rows {
        let Some(kind) = get(cells, ty) else { continue };
        let kind = kind.to_ascii_lowercase().replace('_', " ");
        if kind == "end group" {
            groups.pop();
            continue;
        }
        let Some(id) = get(cells, name) else { continue };
        let Some(q) = form.question(&id) else {
            assert!(
                problems
                    .iter()
                    .any(|p| p.sheet.as_deref() == Some("survey") && p.line == Some(*row as usize)),
                "{}: row {row} (`{id}`) is not in the form and nothing says why",
                path.display()
            );
            continue;
        };
        order.push(id.clone());
        assert_eq!(q.group, groups.last().cloned(), "`{id}`: group");
        if kind == "begin group" {
            groups.push(id.clone());
        }
        for c in survey.translated("label") {
            if let Some(text) = cells.get(&c) {
                let texts: Vec<&String> = match &q.label {
                    Some(Text::ByLanguage(map)) => map.values().collect(),
                    Some(Text::Plain(s)) => vec![s],
                    None => vec![],
                };
                assert!(
                    texts.contains(&text),
                    "`{id}`: label {text:?} not in {texts:?}"
                );
            }
        }
        assert_eq!(
            q.relevant,
            get(cells, survey.col(&["relevant"])),
            "`{id}`: relevant"
        );
        if q.min.is_none() && q.max.is_none() && q.max_length.is_none() {
            assert_eq!(
                q.constraint,
                get(cells, survey.col(&["constraint"])),
                "`{id}`: constraint"
            );
        }
    }
    let ids: Vec<&String> = form.questions.iter().map(|q| &q.id).collect();
    assert_eq!(
        ids,
        order.iter().collect::<Vec<_>>(),
        "{}: question order",
        path.display()
    );
    if let Some(choices) = sheet("choices") {
        let (list, value) = (
            choices.col(&["list_name", "list name"]),
            choices.col(&["name"]),
        );
        for (name, options) in &form.choices {
            let in_sheet: Vec<String> = choices
                .rows
                .iter()
                .filter(|(_, cells)| get(cells, list).as_deref() == Some(name.as_str()))
                .filter_map(|(_, cells)| get(cells, value))
                .collect();
            let imported: Vec<String> = options.iter().map(|c| c.value.clone()).collect();
            assert_eq!(imported, in_sheet, "list `{name}`");
        }
    }
}

/// Every corpus workbook refused only for its missing sex question, with one added, must
/// import as written: otherwise the first pass could not tell a mis-read from a refusal.
#[test]
fn corpus_workbooks_refused_only_for_sex_import_as_written_once_given_one() {
    let dir = repo("../shared/xlsforms");
    if !dir.is_dir() {
        eprintln!("skipped: the corpus folder {} is absent", dir.display());
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut patched = Vec::new();
    for (file, _) in CORPUS {
        let (_, problems) = form::load_file(&dir.join(file));
        let refusals = errors(&problems);
        if refusals.len() != 1 || !refusals[0].contains(NO_SEX) {
            continue;
        }
        let to = tmp.path().join(file.replace('/', "__"));
        with_sex_question(&dir.join(file), &to);
        let (form, problems) = form::load_file(&to);
        let form = form.unwrap_or_else(|| {
            panic!(
                "{file} with a sex question:\n{}",
                errors(&problems).join("\n")
            )
        });
        assert_eq!(form.disaggregation.sex.question, "sex", "{file}");
        assert_same_as_cells(&to, &form, &problems);
        println!("{file}: with a sex question, imported as `{}`", form.id);
        patched.push((file.to_string(), form));
    }
    let names: Vec<&str> = patched.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "pyxform/extra_columns.xlsx",
            "pyxform/extra_sheet_names.xlsx",
            "pyxform/field-list.xlsx",
            "pyxform/text_and_integer.xlsx",
            "pyxform/yes_or_no_question.xlsx",
        ]
    );
    let form = |name: &str| {
        &patched
            .iter()
            .find(|(f, _)| f.ends_with(name))
            .unwrap_or_else(|| panic!("{name}"))
            .1
    };
    let text = |t: &Option<Text>, lang: &str| match t {
        Some(Text::ByLanguage(map)) => map.get(lang).cloned(),
        Some(Text::Plain(s)) => Some(s.clone()),
        None => None,
    };

    // field-list: an English label column, a Chinese one in sheet `choices` only, a group.
    let f = form("field-list.xlsx");
    assert_eq!(f.languages, ["en", "zh"]);
    let ids: Vec<&str> = f.questions.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["name", "table_list_question", "sex"]);
    let q = f.question("table_list_question").expect("question");
    assert_eq!(
        (q.kind, q.group.as_deref(), q.choices.as_deref()),
        (QuestionType::SelectOne, Some("name"), Some("yes_no"))
    );
    assert_eq!(text(&q.label, "en").as_deref(), Some("table list question"));
    assert_eq!(text(&q.hint, "en").as_deref(), Some("hint"));
    assert_eq!(
        f.question("name").map(|g| g.kind),
        Some(QuestionType::Group)
    );
    let yes_no: Vec<(String, Option<String>, Option<String>)> = f.choices["yes_no"]
        .iter()
        .map(|c| {
            let l = Some(c.label.clone());
            (c.value.clone(), text(&l, "en"), text(&l, "zh"))
        })
        .collect();
    assert_eq!(
        yes_no,
        [
            ("yes".into(), Some("Yes".into()), Some("是".into())),
            ("no".into(), Some("No".into()), Some("没有".into())),
        ]
    );

    // yes_or_no_question: the old `select one from L` spelling and `label:english`.
    let f = form("yes_or_no_question.xlsx");
    let q = f.question("good_day").expect("good_day");
    assert_eq!(
        (q.kind, q.choices.as_deref()),
        (QuestionType::SelectOne, Some("yes_or_no"))
    );
    assert_eq!(
        text(&q.label, "en").as_deref(),
        Some("have you had a good day today?")
    );
    let values: Vec<&str> = f.choices_of(q).iter().map(|c| c.value.as_str()).collect();
    assert_eq!(values, ["yes", "no"]);
    // Its YAML keeps `yes` and `no` strings for YAML 1.1 readers too.
    let yaml = form::to_yaml(&f.source).expect("yaml");
    assert!(
        yaml.contains("value: 'yes'") && yaml.contains("value: 'no'"),
        "{yaml}"
    );

    // text_and_integer: types and labels.
    let f = form("text_and_integer.xlsx");
    let kinds: Vec<(&str, QuestionType)> = f
        .questions
        .iter()
        .map(|q| (q.id.as_str(), q.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("your_name", QuestionType::Text),
            ("your_age", QuestionType::Integer),
            ("sex", QuestionType::SelectOne)
        ]
    );
    let age = f.question("your_age").expect("age");
    assert_eq!(
        text(&age.label, "en").as_deref(),
        Some("How many years old are you?")
    );
    assert!(!age.required && age.relevant.is_none() && age.constraint.is_none());
}

/// The comparison itself notices a mis-read: a relevant changed after import fails it.
#[test]
fn the_cell_comparison_catches_a_changed_relevant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.xlsx");
    write_workbook(
        &path,
        &[
            (
                "survey",
                &[
                    &["type", "name", "label", "relevant", "constraint"],
                    &["select_one sex", "sex", "Sex"],
                    &["integer", "age", "Age", "${sex} = 'female'", ". != 13"],
                ],
            ),
            ("choices", SEX_CHOICES),
        ],
    );
    let (form, problems) = form::load_file(&path);
    let mut form = form.expect("form");
    assert_same_as_cells(&path, &form, &problems);
    let age = form
        .questions
        .iter_mut()
        .find(|q| q.id == "age")
        .expect("age");
    age.relevant = Some("${sex}='female'".into());
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_same_as_cells(&path, &form, &problems)
    }));
    assert!(
        caught.is_err(),
        "a changed relevant must fail the comparison"
    );
}

#[test]
fn specify_other_maps_the_sex_question_and_its_other_option() {
    let path = repo("../shared/xlsforms/pyxform/specify_other.xlsx");
    if !path.is_file() {
        eprintln!("skipped: {} is absent", path.display());
        return;
    }
    let form = load_ok(&path);
    assert_eq!(form.id, "specify-other");
    assert_eq!(form.languages, ["en"]);
    let sex = &form.disaggregation.sex;
    assert_eq!(
        (
            sex.question.as_str(),
            sex.female.as_str(),
            sex.male.as_str()
        ),
        ("sex", "female", "male")
    );
    let q = form.question("sex").expect("sex");
    assert!(q.required, "the sex question is always required");
    let values: Vec<&str> = form
        .choices_of(q)
        .iter()
        .map(|c| c.value.as_str())
        .collect();
    assert_eq!(values, ["male", "female", "other"]);
    assert!(
        !form.choices.contains_key("sexes"),
        "the list only `or_other` used is replaced by its copy"
    );
    let other = form.question("sex_other").expect("specify other");
    assert_eq!(other.kind, QuestionType::Text);
    assert_eq!(other.relevant.as_deref(), Some("selected(${sex}, 'other')"));
}

// ---------------------------------------------------------------- round trips

const SURVEY: &[&[&str]] = &[
    &[
        "TYPE",
        "Name",
        "label::English (en)",
        "label::Українська (uk)",
        "hint::English (en)",
        "hint::Українська (uk)",
        "required",
        "relevant",
        "constraint",
        "constraint_message::English (en)",
        "constraint_message::Українська (uk)",
        "calculation",
        "appearance",
        "default",
        "parameters",
    ],
    &["start", "start"],
    &["note", "intro", "Welcome", "Вітаємо"],
    &[
        "begin_group",
        "about",
        "About you",
        "Про вас",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "field-list",
    ],
    &["select_one gender", "gender", "Gender", "Стать"],
    &[
        "integer",
        "age",
        "Age",
        "Вік",
        "Years",
        "Роки",
        "yes",
        "",
        ". >= 14 and . <= 110",
        "14 to 110",
        "від 14 до 110",
    ],
    &[
        "calculate",
        "band",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "if(${age} < 30, 'young', 'old')",
    ],
    &["end_group"],
    &[
        "begin group",
        "life",
        "Daily life",
        "Щоденне життя",
        "",
        "",
        "",
        "${age} >= 18",
    ],
    &[
        "select_multiple services",
        "services",
        "Services used",
        "Послуги",
        "",
        "",
        "",
        "",
        "not(selected(., 'none') and count-selected(.) > 1)",
        "None excludes others",
        "«Жодної» не можна поєднувати",
    ],
    &[
        "select_one agree",
        "safe",
        "I feel safe",
        "Я почуваюся в безпеці",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "likert horizontal",
    ],
    &[
        "decimal",
        "commute",
        "Commute (hours)",
        "Дорога (години)",
        "",
        "",
        "",
        "",
        ". >= 0 and . <= 24 and . != 13",
    ],
    &[
        "date",
        "moved",
        "Moved on",
        "Переїхали",
        "",
        "",
        "",
        "",
        ". <= today()",
    ],
    &[
        "text",
        "comments",
        "Comments",
        "Коментарі",
        "",
        "",
        "",
        "",
        "string-length(.) <= 500",
        "",
        "",
        "",
        "multiline",
        "none",
    ],
    &[
        "select_one yes_no or_other",
        "transport",
        "Transport",
        "Транспорт",
        "",
        "",
        "TRUE()",
    ],
    &["acknowledge", "consent", "I agree", "Погоджуюсь"],
    &[
        "range",
        "rating",
        "Rating",
        "Оцінка",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "start=1 end=5",
    ],
    &["end group"],
];

const CHOICES: &[&[&str]] = &[
    &[
        "list name",
        "name",
        "label::English (en)",
        "label::Українська (uk)",
    ],
    &["gender", "w", "Woman", "Жінка"],
    &["gender", "m", "Man", "Чоловік"],
    &["gender", "x", "Another", "Інше"],
    &["services", "clinic", "Clinic", "Поліклініка"],
    &["services", "none", "None", "Жодної"],
    &["agree", "a1", "Disagree", "Не згоден"],
    &["agree", "a2", "Neutral", "Нейтрально"],
    &["agree", "a3", "Agree", "Згоден"],
    &["yes_no", "yes", "Yes", "Так"],
    &["yes_no", "no", "No", "Ні"],
    &["bands", "young", "Young", "Молоді"],
    &["bands", "old", "Old", "Старші"],
];

const SETTINGS: &[&[&str]] = &[
    &[
        "form_id",
        "version",
        "form_title",
        "default_language",
        "disaggregate_by",
        "owners",
        "notify_language",
        "title_uk",
    ],
    &[
        "City_Survey",
        "2024031501",
        "City survey",
        "English (en)",
        "",
        "planning@example.org",
        "Ukrainian (uk)",
        "Міське опитування",
    ],
];

fn every_type_workbook(dir: &Path) -> PathBuf {
    let path = dir.join("city.xlsx");
    write_workbook(
        &path,
        &[
            ("survey", SURVEY),
            ("choices", CHOICES),
            ("Settings", SETTINGS),
        ],
    );
    path
}

#[test]
fn a_workbook_with_every_supported_type_loads_and_its_yaml_loads_to_the_same_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = every_type_workbook(dir.path());
    let (direct, problems) = form::load_file(&path);
    let direct = direct.unwrap_or_else(|| panic!("{}", errors(&problems).join("\n")));
    let warnings: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("sheet `survey`, row 2: `start` is device metadata")),
        "{warnings:#?}"
    );

    assert_eq!(direct.id, "city-survey");
    assert_eq!(direct.version, 2_024_031_501);
    assert_eq!(direct.languages, ["en", "uk"]);
    assert_eq!(direct.owners, ["planning@example.org"]);
    assert_eq!(direct.notify.language.as_deref(), Some("uk"));
    assert_eq!(direct.title.get("uk", "en"), "Міське опитування");
    let sex = &direct.disaggregation.sex;
    assert_eq!(
        (
            sex.question.as_str(),
            sex.female.as_str(),
            sex.male.as_str()
        ),
        ("gender", "w", "m")
    );
    let q = |id: &str| {
        direct
            .question(id)
            .unwrap_or_else(|| panic!("question {id}"))
    };
    assert!(q("gender").required);
    assert_eq!(q("gender").group.as_deref(), Some("about"));
    assert_eq!(
        (q("age").min, q("age").max, q("age").constraint.as_deref()),
        (Some(14.0), Some(110.0), None)
    );
    assert_eq!(
        (q("commute").max, q("commute").constraint.as_deref()),
        (Some(24.0), Some(". != 13"))
    );
    assert_eq!(q("comments").max_length, Some(500));
    assert_eq!(q("safe").kind, QuestionType::Likert);
    assert_eq!(q("safe").appearance.as_deref(), Some("horizontal"));
    assert_eq!(q("comments").default.as_deref(), Some("none"));
    assert_eq!(q("transport").choices.as_deref(), Some("yes_no_or_other"));
    assert!(q("transport").required);
    assert_eq!(
        q("transport_other").relevant.as_deref(),
        Some("selected(${transport}, 'other')")
    );
    assert_eq!(q("consent").kind, QuestionType::SelectOne);
    assert_eq!(
        (q("rating").kind, q("rating").min, q("rating").max),
        (QuestionType::Integer, Some(1.0), Some(5.0))
    );
    assert_eq!(q("life").relevant.as_deref(), Some("${age} >= 18"));
    match &q("age").label {
        Some(Text::ByLanguage(map)) => assert_eq!(map.get("uk").map(String::as_str), Some("Вік")),
        other => panic!("{other:?}"),
    }
    assert!(
        direct.question("start").is_none(),
        "metadata is not a question"
    );

    // Import: YAML that loads to the same definition.
    let yaml = form::to_yaml(&direct.source).expect("yaml");
    let yaml_path = dir.path().join("city-survey.yaml");
    std::fs::write(&yaml_path, &yaml).expect("write yaml");
    let via_yaml = load_ok(&yaml_path);
    assert_eq!(
        form::definition_json(&direct),
        form::definition_json(&via_yaml),
        "YAML:\n{yaml}"
    );
    assert_eq!(direct.hash, via_yaml.hash);
}

/// Plain texts become the same text in every language once written to a workbook.
fn normalized(file: &FormFile) -> serde_json::Value {
    let mut value = serde_json::to_value(file).expect("json");
    fn walk(v: &mut serde_json::Value, langs: &[String]) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, inner) in map.iter_mut() {
                    let is_text = matches!(
                        key.as_str(),
                        "label" | "hint" | "constraint_message" | "title" | "description"
                    );
                    match inner {
                        serde_json::Value::String(s) if is_text => {
                            *inner = langs
                                .iter()
                                .map(|l| (l.clone(), serde_json::Value::String(s.clone())))
                                .collect::<serde_json::Map<_, _>>()
                                .into();
                        }
                        _ => walk(inner, langs),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| walk(i, langs)),
            _ => {}
        }
    }
    walk(&mut value, &file.languages);
    value
}

#[test]
fn native_forms_survive_export_and_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    for id in ["kyiv-social-services-2025", "kz-education-care-2025"] {
        let native = load_ok(&repo(&format!("forms/{id}.yaml")));
        let path = dir.path().join(format!("{id}.xlsx"));
        xlsform_export::write_file(&native.source, &path).expect("export");
        let back = load_ok(&path);
        assert_eq!(
            normalized(&native.source),
            normalized(&back.source),
            "{id}: export → import changed the form"
        );
    }
}

#[test]
fn the_command_line_converts_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workbook = every_type_workbook(dir.path());
    let forms = dir.path().join("forms");
    std::fs::create_dir(&forms).expect("forms dir");
    let yaml = forms.join("city-survey.yaml");
    let genderlens = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_genderlens"));
        cmd.env("GENDERLENS_CONFIG", "/nonexistent/genderlens.toml")
            .env("GENDERLENS_FORMS_DIR", &forms);
        cmd
    };
    let out = genderlens()
        .args(["forms", "import-xlsform"])
        .arg(&workbook)
        .arg("-o")
        .arg(&yaml)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&yaml).expect("yaml written");
    assert!(text.contains("id: city-survey"), "{text}");

    let exported = dir.path().join("out.xlsx");
    let out = genderlens()
        .args(["forms", "export-xlsform", "city-survey", "-o"])
        .arg(&exported)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The workbook itself in forms/ is loaded too (and clashes with its YAML twin).
    std::fs::copy(&workbook, forms.join("city.xlsx")).expect("copy");
    let out = genderlens().args(["forms", "check"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("form id `city-survey` is already used by"),
        "{stdout}"
    );
    std::fs::remove_file(&yaml).expect("remove yaml");
    let out = genderlens().args(["forms", "check"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("1 form(s) loaded, 0 error(s)"), "{stdout}");

    // Without -o the YAML goes to standard output; a refused workbook writes nothing.
    let refused = dir.path().join("refused.xlsx");
    write_workbook(
        &refused,
        &[("survey", &[&["type", "name", "label"], &["text", "q", "Q"]])],
    );
    let out = genderlens()
        .args(["forms", "import-xlsform"])
        .arg(&refused)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sex question"));

    // `forms check` reports workbook problems with sheet and row.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).expect("dir");
    write_workbook(
        &bad.join("bad.xlsx"),
        &[(
            "survey",
            &[
                &["type", "name", "label"],
                &["select_one sex", "sex", "Sex"],
                &["geopoint", "where", "Where?"],
            ],
        )],
    );
    let out = genderlens()
        .args(["forms", "check"])
        .arg(&bad)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let file = bad.join("bad.xlsx");
    for expected in [
        format!("{}:2: error: sheet `survey`, row 2: choice list `sex` is not in sheet `choices`", file.display()),
        format!("{}:3: error: sheet `survey`, row 3: type `geopoint` (`where`): location questions are not supported", file.display()),
    ] {
        assert!(stdout.contains(&expected), "missing {expected:?} in:\n{stdout}");
    }
}

// ---------------------------------------------------------------- pyxform

/// Runs pyxform on a workbook; `None` when Python or pyxform is not installed.
fn pyxform(workbook: &Path, xform: &Path) -> Option<Result<(), String>> {
    let probe = Command::new("python3")
        .args(["-c", "import pyxform"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return None;
    }
    let script = "import sys\nfrom pyxform.xls2xform import xls2xform_convert\nxls2xform_convert(xlsform_path=sys.argv[1], xform_path=sys.argv[2], validate=False)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(workbook)
        .arg(xform)
        .output()
        .ok()?;
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

#[test]
fn pyxform_accepts_exported_workbooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let city = load_ok(&every_type_workbook(dir.path()));
    let mut forms = vec![city];
    for id in ["kyiv-social-services-2025", "kz-education-care-2025"] {
        forms.push(load_ok(&repo(&format!("forms/{id}.yaml"))));
    }
    for form in forms {
        let path = dir.path().join(format!("export-{}.xlsx", form.id));
        xlsform_export::write_file(&form.source, &path).expect("export");
        let xml = path.with_extension("xml");
        match pyxform(&path, &xml) {
            None => {
                eprintln!("skipped: python3 with pyxform is not installed (pip install pyxform)");
                return;
            }
            Some(Err(err)) => panic!("pyxform refused the export of {}:\n{err}", form.id),
            Some(Ok(())) => {
                let xform = std::fs::read_to_string(&xml).expect("xform");
                assert!(xform.contains("<h:title>"), "{xform}");
            }
        }
    }
}

// ---------------------------------------------------------------- refusals

fn refusal(survey: &[&[&str]], choices: &[&[&str]]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.xlsx");
    write_workbook(&path, &[("survey", survey), ("choices", choices)]);
    let (form, problems) = form::load_file(&path);
    assert!(form.is_none(), "expected a refusal");
    errors(&problems)
        .into_iter()
        .map(|e| e.replace(&path.display().to_string(), "f.xlsx"))
        .collect()
}

const SEX_CHOICES: &[&[&str]] = &[
    &["list_name", "name", "label"],
    &["sex", "female", "Female"],
    &["sex", "male", "Male"],
];

#[test]
fn refusals_name_the_sheet_the_row_and_the_feature() {
    let errors = refusal(
        &[
            &["type", "name", "label"],
            &["select_one sex", "sex", "Sex"],
            &["begin repeat", "children", "Children"],
            &["integer", "child_age", "Age"],
            &["end repeat"],
            &["select_one_from_file districts.csv", "district", "District"],
        ],
        SEX_CHOICES,
    );
    let expected = [
        "f.xlsx:3: error: sheet `survey`, row 3: `begin repeat` `children` is not supported",
        "f.xlsx:6: error: sheet `survey`, row 6: type `select_one_from_file districts.csv` (`district`): choices from a file",
    ];
    for e in expected {
        assert!(
            errors.iter().any(|x| x.starts_with(e)),
            "{e:?} not in {errors:#?}"
        );
    }
    assert!(
        !errors.iter().any(|e| e.contains("child_age")),
        "rows inside a refused repeat are not reported again: {errors:#?}"
    );

    let errors = refusal(
        &[
            &["type", "name", "label"],
            &["select_one sex", "respondent_sex", "Sex"],
        ],
        SEX_CHOICES,
    );
    assert!(
        errors.iter().any(|e| e
            .starts_with("f.xlsx:2: error: sheet `survey`, row 2: no sex question")
            && e.contains("`sex_question` of sheet `settings`")
            && e.contains("perhaps `respondent_sex` (row 2)")),
        "{errors:#?}"
    );

    let errors = refusal(
        &[
            &["type", "name", "label"],
            &["select_one sex", "sex", "Sex"],
        ],
        &[
            &["list_name", "name", "label"],
            &["sex", "a", "A"],
            &["sex", "b", "B"],
        ],
    );
    assert!(
        errors.iter().any(|e| e.starts_with("f.xlsx:2: error: sheet `survey`, row 2: cannot tell which choice of the sex question `sex` is female")),
        "{errors:#?}"
    );
}

#[test]
fn unclosed_repeats_and_groups_name_the_row_they_begin_on() {
    for (begin, name, want) in [
        (
            "begin repeat",
            "children",
            "this `begin repeat` has no `end repeat`",
        ),
        ("begin group", "about", "group `about` has no `end group`"),
    ] {
        let errors = refusal(
            &[
                &["type", "name", "label"],
                &["select_one sex", "sex", "Sex"],
                &[begin, name, "Begun"],
                &["integer", "age", "Age"],
            ],
            SEX_CHOICES,
        );
        let want =
            format!("f.xlsx:3: error: sheet `survey`, row 3: {want} (the sheet ends at row 4)");
        assert!(errors.contains(&want), "{want:?} not in {errors:#?}");
    }
}

#[test]
fn a_text_calculation_becomes_a_dimension_over_its_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.xlsx");
    write_workbook(
        &path,
        &[
            (
                "survey",
                &[
                    &["type", "name", "label", "calculation"],
                    &["select_one sex", "sex", "Sex", ""],
                    &["integer", "age", "Age", ""],
                    &[
                        "calculate",
                        "age_group",
                        "",
                        "if(${age} < 30, 'young', if(${age} < 60, 'middle', 'older'))",
                    ],
                    &["calculate", "double_age", "", "${age} * 2"],
                ],
            ),
            (
                "choices",
                &[
                    &["list_name", "name", "label"],
                    &["sex", "female", "Female"],
                    &["sex", "male", "Male"],
                ],
            ),
            ("settings", &[&["disaggregate_by"], &["age_group"]]),
        ],
    );
    let (form, problems) = form::load_file(&path);
    let form = form.unwrap_or_else(|| panic!("{}", errors(&problems).join("\n")));
    let group = form.question("age_group").expect("age_group");
    let values: Vec<&str> = form
        .choices_of(group)
        .iter()
        .map(|c| c.value.as_str())
        .collect();
    assert_eq!(values, ["young", "middle", "older"]);
    assert_eq!(
        form.disaggregation.by,
        ["age_group"],
        "usable as a `by` dimension"
    );
    assert!(
        form.question("double_age").expect("q").choices.is_none(),
        "numbers stay numbers"
    );
    assert!(problems.iter().any(|p| p.to_string().contains(
        "calculate `age_group` gives text (young, middle, older): analysed by those values"
    )));
}

#[test]
fn choices_without_labels_show_their_value_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.xlsx");
    write_workbook(
        &path,
        &[
            (
                "survey",
                &[
                    &["type", "name", "label"],
                    &["select_one sex", "sex", "Sex"],
                    &["select_one a_b", "pick", "Pick"],
                ],
            ),
            (
                "choices",
                &[
                    &["list_name", "name", "label"],
                    &["sex", "female", "Female"],
                    &["sex", "male", "Male"],
                    &["a_b", "a"],
                    &["a_b", "b"],
                ],
            ),
        ],
    );
    let (form, problems) = form::load_file(&path);
    let form = form.unwrap_or_else(|| panic!("{}", errors(&problems).join("\n")));
    let labels: Vec<&str> = form.choices["a_b"]
        .iter()
        .map(|c| c.label.get("en", "en"))
        .collect();
    assert_eq!(labels, ["a", "b"]);
    assert!(problems.iter().any(|p| p.severity == Severity::Warning
        && p.to_string().contains(
            "sheet `choices`, row 4: choice `a` of list `a_b` has no label; its value is shown"
        )));
}

#[test]
fn settings_columns_genderlens_does_not_read_are_named_or_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let survey: &[&[&str]] = &[
        &["type", "name", "label"],
        &["select_one sex", "sex", "Sex"],
    ];
    let load = |settings: &[&[&str]]| {
        let path = dir.path().join("f.xlsx");
        write_workbook(
            &path,
            &[
                ("survey", survey),
                ("choices", SEX_CHOICES),
                ("settings", settings),
            ],
        );
        let (form, problems) = form::load_file(&path);
        let shown: Vec<(Severity, String)> = problems
            .iter()
            .map(|p| {
                (
                    p.severity,
                    p.to_string().replace(&path.display().to_string(), "f.xlsx"),
                )
            })
            .collect();
        (form, shown)
    };
    let (form, problems) = load(&[
        &[
            "form_id",
            "version",
            "form_title",
            "submission_url",
            "instance_name",
            "allow_choice_duplicates",
            "add_none_option",
            "flat",
            "title_uk",
        ],
        &[
            "f",
            "1",
            "F",
            "https://example.org/submission",
            "concat('a', 'b')",
            "yes",
            "no",
            "yes",
            "Ф",
        ],
    ]);
    assert!(form.is_some(), "{problems:#?}");
    for (column, why) in [
        (
            "submission_url",
            "responses are sent to this genderlens server",
        ),
        ("instance_name", "genderlens names each response by its id"),
        ("allow_choice_duplicates", "refused anyway"),
        ("flat", "genderlens does not use it"),
    ] {
        let want =
            format!("f.xlsx:2: warning: sheet `settings`, row 2: column `{column}` is ignored: ");
        assert!(
            problems
                .iter()
                .any(|(s, p)| *s == Severity::Warning && p.starts_with(&want) && p.contains(why)),
            "{want:?} {why:?} not in {problems:#?}"
        );
    }
    assert!(
        !problems
            .iter()
            .any(|(_, p)| p.contains("add_none_option") || p.contains("title_uk")),
        "{problems:#?}"
    );
    assert!(
        !problems.iter().any(|(s, _)| *s == Severity::Error),
        "{problems:#?}"
    );

    let (form, problems) = load(&[
        &[
            "form_id",
            "version",
            "public_key",
            "add_none_option",
            "disaggregate-by",
        ],
        &["f", "1", "MIIBIjANBg", "=TRUE()", "age"],
    ]);
    assert!(form.is_none(), "{problems:#?}");
    for want in [
        "sheet `settings`, row 2: column `public_key`: ODK encrypts responses with this public key",
        "sheet `settings`, row 2: column `add_none_option`: pyxform adds a choice `none`",
        "sheet `settings`, row 2: column `disaggregate-by` is not a setting; write `disaggregate_by`",
    ] {
        assert!(problems.iter().any(|(s, p)| *s == Severity::Error && p.contains(want)), "{want:?} not in {problems:#?}");
    }
}

/// Cell text a hostile or careless author might write, biased towards XLSForm syntax.
fn any_cell() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        Just(String::new()),
        Just("select_one sex".to_owned()),
        Just("begin group".to_owned()),
        Just("end group".to_owned()),
        Just("begin repeat".to_owned()),
        Just("integer".to_owned()),
        Just("calculate".to_owned()),
        Just("${sex} = 'female'".to_owned()),
        Just("sex".to_owned()),
        "[a-z_ ]{0,12}",
        "\\PC{0,30}",
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(64))]

    /// Arbitrary survey rows are imported or refused with problems, never a panic.
    #[test]
    fn arbitrary_workbooks_import_or_are_refused(
        rows in proptest::collection::vec(proptest::collection::vec(any_cell(), 5), 0..12),
        choices in proptest::collection::vec(proptest::collection::vec(any_cell(), 3), 0..6),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fuzz.xlsx");
        let mut survey: Vec<Vec<&str>> = vec![vec!["type", "name", "label", "relevant", "calculation"]];
        survey.extend(rows.iter().map(|r| r.iter().map(String::as_str).collect()));
        let mut choice_rows: Vec<Vec<&str>> = vec![vec!["list_name", "name", "label"]];
        choice_rows.extend(choices.iter().map(|r| r.iter().map(String::as_str).collect()));
        let survey: Vec<&[&str]> = survey.iter().map(Vec::as_slice).collect();
        let choice_rows: Vec<&[&str]> = choice_rows.iter().map(Vec::as_slice).collect();
        write_workbook(&path, &[("survey", &survey), ("choices", &choice_rows)]);
        let (form, problems, _) = form::xlsform::load(&path);
        proptest::prop_assert!(form.is_some() || !problems.is_empty());
    }

    /// Bytes that are not a workbook at all are refused, never a panic.
    #[test]
    fn arbitrary_bytes_are_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk.xlsx");
        std::fs::write(&path, &bytes).expect("write");
        let (form, problems, _) = form::xlsform::load(&path);
        proptest::prop_assert!(form.is_none() && !problems.is_empty());
    }
}
