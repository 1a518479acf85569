//! Rendering diagnostics as text with `file:line:col` and a snippet.

use super::{Diagnostic, Loc, Severity};

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let offset = (0..=offset)
        .rev()
        .find(|&o| text.is_char_boundary(o))
        .unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Render one diagnostic. `source` returns the text of a workspace file.
pub fn render(diag: &Diagnostic, source: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let sev = match diag.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    out.push_str(&format!("{sev}: {}\n", diag.message));
    if let Some(loc) = &diag.loc {
        snippet(&mut out, loc, diag.label.as_deref(), '^', "-->", source);
    }
    for rel in &diag.related {
        snippet(&mut out, &rel.loc, Some(&rel.message), '-', ":::", source);
    }
    for note in &diag.notes {
        out.push_str(&format!("  = note: {note}\n"));
    }
    if let Some(hint) = &diag.hint {
        out.push_str(&format!("hint: {hint}\n"));
    }
    out
}

pub fn render_all(diags: &[Diagnostic], source: &dyn Fn(&str) -> Option<String>) -> String {
    diags
        .iter()
        .map(|d| render(d, source))
        .collect::<Vec<_>>()
        .join("\n")
}

fn snippet(
    out: &mut String,
    loc: &Loc,
    label: Option<&str>,
    mark: char,
    arrow: &str,
    source: &dyn Fn(&str) -> Option<String>,
) {
    let Some(text) = source(&loc.file) else {
        out.push_str(&format!(" {arrow} {}\n", loc.file));
        return;
    };
    let (line, col) = line_col(&text, loc.span.start);
    let width = line.to_string().len();
    let pad = " ".repeat(width);
    out.push_str(&format!("{pad}{arrow} {}:{line}:{col}\n", loc.file));
    let Some(line_text) = text.lines().nth(line - 1) else {
        return;
    };
    // The caret covers the span's part on its first line, at least one column.
    let start_col = col - 1;
    let line_chars = line_text.chars().count();
    let span_text = text
        .get(loc.span.start..loc.span.end.max(loc.span.start))
        .unwrap_or("");
    let first_line_len = span_text
        .split('\n')
        .next()
        .map_or(0, |s| s.chars().count());
    let len = first_line_len.clamp(1, line_chars.saturating_sub(start_col).max(1));
    out.push_str(&format!("{pad} |\n"));
    out.push_str(&format!("{line} | {line_text}\n"));
    let marks: String = std::iter::repeat_n(mark, len).collect();
    match label {
        Some(l) => out.push_str(&format!("{pad} | {}{marks} {l}\n", " ".repeat(start_col))),
        None => out.push_str(&format!("{pad} | {}{marks}\n", " ".repeat(start_col))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;

    #[test]
    fn line_col_counts_from_one() {
        let t = "ab\ncd\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 4), (2, 2));
        assert_eq!(line_col(t, 100), (3, 1));
    }

    #[test]
    fn renders_snippet_with_hint() {
        let text = "[wheels.six]\nenvv = 1\n";
        let d = Diagnostic::error("unknown key `envv` in //wheels:six")
            .at(Loc::new("rules/w.toml", Span::new(13, 17)))
            .label("unknown key")
            .hint("did you mean `env`?");
        let r = render(&d, &|_| Some(text.to_string()));
        assert_eq!(
            r,
            "error: unknown key `envv` in //wheels:six\n --> rules/w.toml:2:1\n  |\n2 | envv = 1\n  | ^^^^ unknown key\nhint: did you mean `env`?\n"
        );
    }
}
