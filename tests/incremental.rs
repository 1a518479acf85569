//! Salsa at work: after an edit, exactly the queries that depend on it run
//! again; everything else is reused.

mod common;
use common::fake_workspace;
use refine::eval::{
    Database, LabelId, Overrides, SourceFile, Workspace, derivation, index, workspace_diagnostics,
};
use salsa::Setter;

fn load(root: &std::path::Path) -> (Database, Workspace, Vec<SourceFile>) {
    let db = Database::with_log(refine::workspace::Files::new(root, false));
    let config = SourceFile::new(
        &db,
        "WORKSPACE.toml".into(),
        std::fs::read_to_string(root.join("WORKSPACE.toml")).unwrap(),
    );
    let files: Vec<SourceFile> = refine::workspace::rule_files(root)
        .unwrap()
        .into_iter()
        .map(|rel| {
            let text = std::fs::read_to_string(root.join(&rel)).unwrap();
            SourceFile::new(&db, rel, text)
        })
        .collect();
    let ws = Workspace::new(&db, config, files.clone(), Overrides::default());
    (db, ws, files)
}

/// Evaluate everything a build of the whole workspace evaluates.
fn evaluate(db: &Database, ws: Workspace) {
    assert!(workspace_diagnostics(db, ws).is_empty());
    for l in index(db, ws).labels.clone() {
        derivation(db, ws, LabelId::new(db, l)).as_ref().unwrap();
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn editing_one_rule_reruns_only_what_depends_on_it() {
    let ws_dir = fake_workspace();
    let (mut db, ws, files) = load(ws_dir.root());
    evaluate(&db, ws);
    let first = db.take_log();
    assert!(first.len() > 40, "everything ran once: {first:?}");

    // Nothing changed: nothing runs.
    evaluate(&db, ws);
    assert_eq!(db.take_log(), Vec::<String>::new());

    // Edit one env value of //wheels:alpha in rules/wheels.toml.
    let wheels = *files
        .iter()
        .find(|f| f.path(&db) == "rules/wheels.toml")
        .unwrap();
    let text = wheels
        .text(&db)
        .replace("CFLAGS = \"-O2\"", "CFLAGS = \"-O3\"");
    wheels.set_text(&mut db).to(text);
    evaluate(&db, ws);
    assert_eq!(
        sorted(db.take_log()),
        [
            "catalog(workspace)",
            "declared(rules/wheels.toml)",
            "derivation(//wheels:alpha)",
            "lower_file(rules/wheels.toml)",
            "parse_file(rules/wheels.toml)",
            "target(//repairs:beta)",
            "target(//wheels:alpha)",
            "target(//wheels:beta)",
            "target(//wheels:gamma)",
            "workspace_diagnostics(workspace)",
        ],
        "the file is re-read and its targets re-lowered, but only alpha's derivation changes; \
         the index, other files, packs and every other derivation are reused"
    );

    // A comment: the file is re-parsed, no derivation runs again.
    let text = wheels
        .text(&db)
        .replace("# wheels for the engine tests", "# reworded");
    wheels.set_text(&mut db).to(text);
    evaluate(&db, ws);
    let log = db.take_log();
    assert!(log.iter().all(|q| !q.starts_with("derivation(")), "{log:?}");
    assert!(log.contains(&"parse_file(rules/wheels.toml)".to_string()));

    // A recipe include: only the pack that includes it.
    ws_dir.edit("recipes/lib/common.sh", "log()", "# new\nlog()");
    for f in db.aux_files() {
        db.refresh_aux(f);
    }
    evaluate(&db, ws);
    assert_eq!(
        sorted(db.take_log()),
        [
            "derivation(//packs:zlib)",
            "workspace_diagnostics(workspace)"
        ]
    );
}

/// The evaluation cache of the shipped workspace (hybrid images, frontends:
/// every kind of derivation refine ships) is reused by the next run when
/// nothing changed, and gives the same graph. (It was saved on every run
/// and never read back: a field skipped when empty cannot be read back
/// from postcard, which is not self-describing.)
#[test]
fn the_evaluation_cache_of_the_shipped_workspace_is_reused() {
    let store = tempfile::tempdir().unwrap();
    let load = || {
        let s = refine::ops::Session::load(&refine::ops::GlobalOpts {
            workspace: Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
            store: Some(store.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{}", e.rendered.unwrap_or(e.message)));
        let labels = s.resolve(&["//...".to_string()]).unwrap();
        let g = s.graph(&labels).unwrap();
        let keys: Vec<String> = g
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {} {} {:?} {} {} {:?} {:?} {:?} {:?} {:?}",
                    n.label(),
                    n.arch(),
                    n.toolchain_name(),
                    n.fixed_output(),
                    n.is_wheel_source(),
                    n.is_builtin(),
                    n.deps,
                    n.owner,
                    n.derivation(),
                    n.decl(),
                    n.fields()
                )
            })
            .collect();
        (s.from_snapshot, keys)
    };
    let (first, a) = load();
    assert!(!first, "a new store has no evaluation cache");
    let (second, b) = load();
    assert!(second, "nothing changed: the evaluation is reused");
    assert_eq!(a, b, "and it is the same graph");

    // A byte of the cache changed (its derivations are decoded only when
    // asked for, so the whole file is checked when read): not reused, and
    // the evaluation is made afresh, the same.
    let dir = store.path().join("eval");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    let (third, c) = load();
    assert!(!third, "a damaged evaluation cache is not reused");
    assert_eq!(a, c);
    let (fourth, _) = load();
    assert!(fourth, "and the next run reuses the one made anew");
}
