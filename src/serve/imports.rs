//! The dashboard's front door: a requirements file (and constraints)
//! uploaded from the browser or `POST /api/imports` (multipart) becomes an
//! import of the served workspace, exactly as `refine import` makes one;
//! the answer is its plan (reused / built from an sdist / cannot be built,
//! and why), and the page's button queues the set's build and test.
//!
//! The upload is kept in the workspace (`uploads/NAME.txt`, and
//! `uploads/NAME.constraints.txt`), where the import records it, so that
//! `refine add --name NAME` and `--auto-apply` can make the import again.
//! When the import fails (a bad line, nothing for the platform, the index
//! unreachable), the uploads are put back as they were and nothing else is
//! written: the import writes its rules only once they evaluate.

use super::{CanAct, CanRead, Shared, blocking, refuse};
use crate::error::{Error, ErrorClass};
use crate::ops::import::{ImportArgs, ImportReport, import};
use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One import at a time (they write the same workspace).
static IMPORTING: Mutex<()> = Mutex::new(());

/// The largest upload: a requirements file with hashes for a few thousand
/// packages.
pub const MAX_UPLOAD: usize = 1 << 20;

/// The directory uploads are kept in, in the workspace.
const UPLOADS: &str = "uploads";

#[derive(Default)]
struct Upload {
    name: Option<String>,
    requirements: Option<(String, String)>,
    constraints: Option<(String, String)>,
}

/// Read the multipart fields: `requirements` (a file), `constraints` (a
/// file, optional), `name` (optional).
async fn read_upload(mut m: Multipart) -> Result<Upload, (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    // An upload over the limit is 413, whichever field meets it.
    let broken = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            (status, "the upload is larger than 1 MiB".to_string())
        } else {
            (status, e.body_text())
        }
    };
    let mut u = Upload::default();
    while let Some(field) = m.next_field().await.map_err(broken)? {
        let field_name = field.name().unwrap_or_default().to_string();
        let file_name = field
            .file_name()
            .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f).to_string());
        let bytes = field.bytes().await.map_err(broken)?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| bad(format!("`{field_name}` is not UTF-8 text")))?;
        match field_name.as_str() {
            "name" => u.name = Some(text.trim().to_string()).filter(|n| !n.is_empty()),
            "requirements" | "constraints" => {
                let f = file_name.unwrap_or_else(|| format!("{field_name}.txt"));
                if text.trim().is_empty() {
                    if field_name == "constraints" {
                        continue;
                    }
                    return Err(bad(format!("{f} is empty: nothing to import")));
                }
                let slot = if field_name == "requirements" {
                    &mut u.requirements
                } else {
                    &mut u.constraints
                };
                *slot = Some((f, text));
            }
            other => {
                return Err(bad(format!(
                    "unknown field `{other}`: send `requirements` (a file), and optionally `constraints` (a file) and `name`"
                )));
            }
        }
    }
    Ok(u)
}

/// The import's name: the form's, else the requirements file's stem.
fn import_name(u: &Upload) -> Result<String, String> {
    let raw = match (&u.name, &u.requirements) {
        (Some(n), _) => n.clone(),
        (None, Some((f, _))) => f
            .rsplit_once('.')
            .map_or(f.as_str(), |(stem, _)| stem)
            .to_string(),
        (None, None) => String::new(),
    };
    crate::ops::import::import_name(&raw).ok_or_else(|| {
        format!(
            "`{raw}` cannot name an import: use letters, digits and `-` (the name field, or the file's name)"
        )
    })
}

/// Files written for an import, with what they held before.
struct Written(Vec<(PathBuf, Option<Vec<u8>>)>);

/// The uploads directory, removed again when the import that made it
/// fails and leaves it empty.
fn remove_if_empty(dir: &Path) {
    let _ = std::fs::remove_dir(dir);
}

impl Written {
    fn write(&mut self, path: &Path, text: &str) -> std::io::Result<()> {
        let before = std::fs::read(path).ok();
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        self.0.push((path.to_path_buf(), before));
        crate::store::local::write_atomic(dir, path, text.as_bytes())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// Put everything back as it was.
    fn undo(self) {
        for (p, before) in self.0.into_iter().rev() {
            match before {
                Some(b) => {
                    let dir = p.parent().unwrap_or(Path::new(".")).to_path_buf();
                    let _ = crate::store::local::write_atomic(&dir, &p, &b);
                }
                None => {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }
}

#[derive(serde::Serialize)]
struct Package {
    name: String,
    version: String,
    /// sdist (built from it), pure or wheel (a wheel reused), or rule (a
    /// rule the workspace has builds it).
    how: &'static str,
    what: String,
    label: Option<String>,
    /// Named in the file or needed at run time (else: only to build).
    runtime: bool,
}

#[derive(serde::Serialize)]
struct Cannot {
    name: String,
    version: String,
    why: String,
    hint: String,
}

#[derive(serde::Serialize)]
struct Plan {
    name: String,
    file: String,
    set: String,
    test: String,
    changed: bool,
    packages: Vec<Package>,
    unbuildable: Vec<Cannot>,
    notes: Vec<String>,
}

/// How a package is had, from the import's words for it.
fn how(what: &str) -> &'static str {
    if what.starts_with("built from") {
        "sdist"
    } else if what.starts_with("pure wheel") {
        "pure"
    } else if what.ends_with("reused") {
        "wheel"
    } else {
        "rule"
    }
}

fn plan_of(r: &ImportReport) -> Plan {
    let o = &r.outcome;
    Plan {
        name: r.name.clone(),
        file: r.file.clone(),
        set: r.set.to_string(),
        test: format!("//tests:{}", r.name),
        changed: r.changed,
        packages: o
            .decisions
            .iter()
            .map(|d| Package {
                name: d.name.clone(),
                version: d.version.clone(),
                how: how(&d.what),
                what: d.what.clone(),
                label: d.label.as_ref().map(|l| l.to_string()),
                runtime: d.runtime,
            })
            .collect(),
        unbuildable: o
            .unbuildable
            .iter()
            .map(|u| Cannot {
                name: u.name.clone(),
                version: u.version.clone(),
                why: u.why.clone(),
                hint: u.hint.clone(),
            })
            .collect(),
        notes: o.notes.clone(),
    }
}

/// An import's error as the API answers it: the CLI's message and hint,
/// with the upload's name where the message names the saved file.
fn error_response(e: Error, saved: &[(PathBuf, String)]) -> Response {
    let fix = |s: &str| {
        let mut s = s.to_string();
        for (path, shown) in saved {
            s = s.replace(&path.display().to_string(), shown);
        }
        s
    };
    let status = match e.class {
        ErrorClass::User | ErrorClass::Build => StatusCode::BAD_REQUEST,
        ErrorClass::Environment => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let locations: Vec<serde_json::Value> = e
        .locations
        .iter()
        .map(|l| {
            serde_json::json!({"file": fix(&l.file), "line": l.line, "col": l.col,
                "message": fix(&l.message), "hint": l.hint})
        })
        .collect();
    (
        status,
        Json(serde_json::json!({
            "error": fix(&e.message),
            "hint": e.hint.as_deref().map(fix),
            "causes": e.causes.iter().map(|c| fix(c)).collect::<Vec<_>>(),
            "locations": locations,
            "status": status.as_u16(),
            "written": false,
        })),
    )
        .into_response()
}

/// `POST /api/imports` (multipart): import the uploaded file; 201 with the
/// plan, or the error with nothing written.
pub async fn create(
    State(app): State<Shared>,
    _: CanAct,
    body: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let m = match body {
        Ok(m) => m,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!(
                    "send multipart/form-data with a `requirements` file: {}",
                    e.body_text()
                ),
                true,
            );
        }
    };
    let u = match read_upload(m).await {
        Ok(u) => u,
        Err((status, e)) => return refuse(status, &e, true),
    };
    let Some((req_name, req_text)) = u.requirements.clone() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "no `requirements` file in the upload",
            true,
        );
    };
    let name = match import_name(&u) {
        Ok(n) => n,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e, true),
    };
    let app2 = app.clone();
    let done = blocking(true, move || {
        let _one = IMPORTING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = app2.workspace.join(UPLOADS);
        let had_dir = dir.is_dir();
        let req_path = dir.join(format!("{name}.txt"));
        let mut saved = vec![(req_path.clone(), req_name.clone())];
        let mut written = Written(Vec::new());
        let mut args = ImportArgs {
            files: vec![req_path.clone()],
            name: Some(name.clone()),
            ..Default::default()
        };
        let write = |w: &mut Written, p: &Path, t: &str| {
            w.write(p, t).map_err(|e| {
                Error::env(format!("cannot write {}: {e}", p.display()))
                    .hint("check the workspace's permissions and free space")
            })
        };
        let result = (|| {
            write(&mut written, &req_path, &req_text)?;
            if let Some((c_name, c_text)) = &u.constraints {
                let c_path = dir.join(format!("{name}.constraints.txt"));
                write(&mut written, &c_path, c_text)?;
                saved.push((c_path.clone(), c_name.clone()));
                args.constraints.push(c_path);
            }
            let mut opts = app2.global.clone();
            opts.workspace = Some(app2.workspace.clone());
            import(&opts, &args)
        })();
        match result {
            Ok(r) => Ok(plan_of(&r)),
            Err(e) => {
                written.undo();
                if !had_dir {
                    remove_if_empty(&dir);
                }
                Err((e, saved))
            }
        }
    })
    .await;
    match done {
        Ok(Ok(plan)) => (StatusCode::CREATED, Json(plan)).into_response(),
        Ok(Err((e, saved))) => error_response(e, &saved),
        Err(refused) => refused,
    }
}

const SCRIPT: &str = r#"
(function () {
  var HOW = {sdist: 'built from sdist', pure: 'pure wheel reused', wheel: 'prebuilt wheel reused', rule: 'a rule of the workspace'};
  var form = document.getElementById('import-form');
  var out = document.getElementById('import-result');
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function row(cells, cls) { var tr = el('tr', cls); cells.forEach(function (c) { var td = el('td'); if (c instanceof Node) td.appendChild(c); else td.textContent = c; tr.appendChild(td); }); return tr; }
  var finished = false;
  function follow(job, status) {
    fetch('/api/queue', {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (q) {
      var j = (q.jobs || q).find(function (x) { return x.id === job; });
      if (!j) { status.textContent = 'job ' + job + ' is gone'; return; }
      status.className = 'v-' + j.state;
      status.textContent = 'job ' + j.id + ': ' + j.state + (j.message ? ' (' + j.message + ')' : '');
      if (j.run) {
        var link = document.getElementById('follow-run');
        link.href = '/runs/' + j.run; link.textContent = 'run #' + j.run;
        fetch('/api/runs/' + j.run, {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (v) {
          var t = document.getElementById('follow-results'); t.textContent = '';
          t.appendChild(row(['target', 'verdict', 'log'], 'head'));
          var last = null;
          (v.results || []).forEach(function (res) {
            if (res.log) last = res;
            var a = el('a', '', 'log'); a.href = '/logs/' + res.id;
            t.appendChild(row([res.label, el('span', 'v-' + res.verdict, res.verdict), a], 'follow'));
            if (res.verdict === 'running' && !document.getElementById('live-log').dataset.events) {
              var live = document.getElementById('live-log');
              live.dataset.events = '/logs/' + res.id + '/events';
              live.dataset.label = res.label;
              document.getElementById('live-label').textContent = res.label;
              var es = new EventSource(live.dataset.events);
              es.addEventListener('line', function (e) { live.textContent += e.data + '\n'; live.scrollTop = live.scrollHeight; });
              es.addEventListener('end', function () { es.close(); delete live.dataset.events; });
            }
          });
          // Over before a poll saw it run: the log of the run's last step.
          var live = document.getElementById('live-log');
          if (finished && last && !live.textContent) {
            document.getElementById('live-label').textContent = last.label + ' (finished)';
            fetch('/logs/' + last.id + '/raw', {credentials: 'same-origin'}).then(function (r) { return r.text(); })
              .then(function (t) { live.textContent = t; live.scrollTop = live.scrollHeight; });
          }
        });
      }
      if (j.state === 'queued' || j.state === 'running') { setTimeout(function () { follow(job, status); }, 1000); }
      else { finished = true; }
    });
  }
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    out.textContent = '';
    var status = el('p', 'muted', 'importing (resolving against the index)…'); status.id = 'import-status';
    out.appendChild(status);
    fetch('/api/imports', {method: 'POST', credentials: 'same-origin', headers: {'X-Refine-Request': '1'}, body: new FormData(form)})
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (x) {
        var s = x[0], j = x[1];
        if (s !== 201) {
          status.className = 'refused'; status.id = 'import-error';
          status.textContent = 'refused (' + s + '): ' + j.error;
          if (j.hint) out.appendChild(el('p', 'hint', 'hint: ' + j.hint));
          (j.locations || []).forEach(function (l) { out.appendChild(el('p', 'mono', l.file + ':' + l.line + ':' + l.col + ': ' + l.message)); });
          out.appendChild(el('p', 'muted', 'nothing was written'));
          return;
        }
        status.className = ''; status.id = 'import-done';
        status.textContent = 'imported as ' + j.set + ' (' + j.file + (j.changed ? '' : ', unchanged') + ')';
        var t = el('table'); t.id = 'import-plan';
        t.appendChild(row(['package', 'version', 'how', 'what', 'target'], 'head'));
        j.packages.forEach(function (p) { t.appendChild(row([p.name, p.version, el('span', 'how-' + p.how, HOW[p.how] || p.how), p.what + (p.runtime ? '' : ' (to build)'), p.label || ''], 'plan')); });
        j.unbuildable.forEach(function (u) { t.appendChild(row([u.name, u.version, el('span', 'v-failed', 'cannot be built'), u.why + ' — ' + u.hint, ''], 'plan cannot')); });
        out.appendChild(t);
        var p = el('p'); var b = el('button', '', 'Build and test ' + j.set); b.id = 'queue-import';
        var st = el('span', '', ''); st.id = 'follow-status'; st.style.marginLeft = '10px';
        p.appendChild(b); p.appendChild(st); out.appendChild(p);
        b.addEventListener('click', function () {
          b.disabled = true;
          fetch('/api/builds', {method: 'POST', credentials: 'same-origin', headers: {'Content-Type': 'application/json', 'X-Refine-Request': '1'},
            body: JSON.stringify({targets: [j.set], test: true})})
            .then(function (r) { return r.json().then(function (q) { return [r.status, q]; }); })
            .then(function (q) {
              if (q[0] !== 202) { st.className = 'refused'; st.textContent = 'refused (' + q[0] + '): ' + q[1].error; b.disabled = false; return; }
              document.getElementById('follow').hidden = false;
              follow(q[1].id, st);
            });
        });
      }).catch(function (e) { status.className = 'refused'; status.textContent = String(e); });
  });
})();
"#;

/// `GET /imports`: the upload form; the plan and the build follow on the
/// same page.
pub async fn page(State(app): State<Shared>, _: CanRead<false>, headers: HeaderMap) -> Response {
    let logged_in = app.authorized(&headers);
    let body = html! {
        h1 { "Import a requirements file" }
        p.muted {
            "As " code { "refine import" } " does: each requirement is resolved for "
            "the workspace's platform, then reused (a wheel for it on the index), "
            "built from its sdist, or named as one that cannot be built, with why. "
            "The file is kept in the workspace (" code { "uploads/" } ") with the "
            "import's rules (" code { "rules/imported/" } ")."
        }
        @if !logged_in { p.hint { "Importing needs the token: log in at the top of the page." } }
        form #import-form {
            table {
                tr { td { label for="requirements" { "requirements file" } } td { input #requirements type="file" name="requirements" required; } }
                tr { td { label for="constraints" { "constraints file (optional)" } } td { input #constraints type="file" name="constraints"; } }
                tr { td { label for="import-name" { "name (default: the file's)" } } td { input #import-name type="text" name="name" placeholder="requirements"; } }
            }
            p { button #import-submit type="submit" { "Import" } }
        }
        div #import-result {}
        div #follow hidden {
            h2 { "The build " a #follow-run href="#" {} }
            table #follow-results {}
            h2 { "Live log " span #live-label.mono {} }
            pre #live-log {}
        }
        script { (maud::PreEscaped(SCRIPT)) }
    };
    super::pages::page(&app, &headers, "Import", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_says_how_each_package_is_had() {
        assert_eq!(how("built from x-1.0.tar.gz (pyproject.toml)"), "sdist");
        assert_eq!(
            how("pure wheel six-1.16.0-py2.py3-none-any.whl reused"),
            "pure"
        );
        assert_eq!(
            how("prebuilt target wheel x-1-cp311-cp311-manylinux2014_s390x.whl reused"),
            "wheel"
        );
        assert_eq!(how("the built-in rule of the same version is used"), "rule");
    }

    #[test]
    fn an_import_is_named_by_the_form_or_the_file() {
        let u = |name: Option<&str>, file: &str| Upload {
            name: name.map(str::to_string),
            requirements: Some((file.to_string(), "six\n".into())),
            constraints: None,
        };
        assert_eq!(import_name(&u(None, "web-api.txt")).unwrap(), "web-api");
        assert_eq!(import_name(&u(Some("Svc_2"), "x.txt")).unwrap(), "svc-2");
        assert!(import_name(&u(None, "../../etc.txt")).is_err());
        assert!(import_name(&u(Some("a/b"), "x.txt")).is_err());
    }

    #[test]
    fn a_failed_import_puts_the_uploads_back() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("uploads/web.txt");
        std::fs::create_dir_all(old.parent().unwrap()).unwrap();
        std::fs::write(&old, "six==1.16.0\n").unwrap();
        let new = d.path().join("uploads/web.constraints.txt");
        let mut w = Written(Vec::new());
        w.write(&old, "six==[bad\n").unwrap();
        w.write(&new, "six<2\n").unwrap();
        w.undo();
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "six==1.16.0\n");
        assert!(!new.exists());
    }
}
