//! A build step as an REAPI Action, and back.
//!
//! ```text
//! input root/
//!   plan.json          the SandboxPlan (its container name left out: the
//!                      worker names its own container)
//!   blobs/<sha256>     every blob the plan names: the image's root
//!                      filesystem, sources, wheels, recipe files, the
//!                      manifests of packs' and runtimes' trees and their files
//! Command: refine-sandbox plan.json; output directory `out`
//! Platform: ISA, OSFamily, container-image (the image's digest),
//!           host-ISA (a hybrid image only: the ISA of its cross tools)
//! ```

use super::cas::Blob;
use super::re;
use crate::key::Digest;
use crate::platform::Arch;
use crate::sched::sandbox::{ImagePlan, MountSource, SandboxPlan};
use crate::store::LocalStore;
use std::collections::{BTreeMap, BTreeSet};

pub const PLAN_FILE: &str = "plan.json";
pub const BLOBS_DIR: &str = "blobs";
pub const OUT_DIR: &str = "out";
/// The platform property that names the image (a wildcard key for
/// BuildGrid: not matched against workers, carried for them).
pub const IMAGE_KEY: &str = "container-image";
/// The platform property of a hybrid plan: its image holds the cross
/// compilers of the machine that made it, programs of this ISA, so only a
/// worker that runs them may take it (a native s390x machine runs the
/// emulated toolchain's plans, not the hybrid ones). Workers advertise
/// their machine's ISA under it.
pub const HOST_KEY: &str = "host-ISA";
/// Most bytes of a plan, a Command or a Directory read from a server.
pub const MESSAGE_LIMIT: u64 = 64 << 20;

/// The ISA name an architecture goes by in platform properties (Bazel's
/// and BuildGrid's spelling: `x86-64`, `s390x`, `aarch64`, `ppc64le`).
pub fn isa(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86-64",
        a => a.as_str(),
    }
}

/// An action ready to send: its digest, and every blob the server needs
/// to run it (the inputs, the plan, the directories, the Command, the
/// Action itself).
pub struct Prepared {
    pub action: re::Action,
    pub digest: re::Digest,
    pub blobs: Vec<Blob>,
    /// Bytes of the inputs (what a cold server receives).
    pub input_bytes: u64,
}

fn io(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Every blob a plan names, with the local file that holds it (or the
/// recipe file's bytes).
fn plan_blobs(
    plan: &SandboxPlan,
    store: &LocalStore,
    recipe: &dyn Fn(&str, &Digest) -> Option<Vec<u8>>,
) -> Result<Vec<Blob>, String> {
    let cas = &store.cas;
    let local = |d: &Digest| -> Result<Blob, String> {
        let size = cas.verify_blob(d).map_err(io)?;
        Ok(Blob {
            digest: d.clone(),
            size,
            src: super::cas::Src::File(cas.blob_path(d)),
        })
    };
    let mut out = Vec::new();
    if let ImagePlan::Tarball { rootfs, .. } = &plan.image {
        out.push(local(rootfs)?);
    }
    for m in &plan.mounts {
        match &m.source {
            MountSource::Blob(d) | MountSource::UnpackedWheel(d) => out.push(local(d)?),
            MountSource::Tree(d) => {
                out.push(local(d)?);
                let tree = cas.tree(d).map_err(io)?;
                for (_, fd, _) in tree.files() {
                    out.push(local(fd)?);
                }
            }
            MountSource::Recipes | MountSource::Build | MountSource::Out => {}
        }
    }
    for (rel, d) in &plan.recipe_files {
        let bytes = recipe(rel, d).ok_or_else(|| format!("cannot read recipe {rel}"))?;
        let b = Blob::bytes(bytes);
        if &b.digest != d {
            return Err(format!("recipe {rel} changed while refine was running"));
        }
        out.push(b);
    }
    Ok(out)
}

/// The Platform of a plan: where it may run.
pub fn platform(plan: &SandboxPlan) -> re::Platform {
    let image = match &plan.image {
        ImagePlan::Oci { reference } => reference.clone(),
        ImagePlan::Tarball { rootfs, .. } => rootfs.to_string(),
    };
    let mut props = vec![
        ("ISA", isa(plan.arch).to_string()),
        ("OSFamily", "linux".to_string()),
        (IMAGE_KEY, image),
    ];
    if let Some(h) = cross_host(plan) {
        props.push((HOST_KEY, isa(h).to_string()));
    }
    let mut properties: Vec<re::platform::Property> = props
        .into_iter()
        .map(|(n, v)| re::platform::Property {
            name: n.to_string(),
            value: v,
        })
        .collect();
    properties.sort_by(|a, b| a.name.cmp(&b.name));
    re::Platform { properties }
}

/// Build the Action of a plan.
pub fn prepare(
    plan: &SandboxPlan,
    store: &LocalStore,
    recipe: &dyn Fn(&str, &Digest) -> Option<Vec<u8>>,
    fresh: bool,
) -> Result<Prepared, String> {
    let inputs = plan_blobs(plan, store, recipe)?;
    let mut wire = plan.clone();
    // The worker's own: its container's name.
    wire.name = String::new();
    let plan_json = serde_json::to_vec(&wire).map_err(io)?;
    let plan_blob = Blob::bytes(plan_json);

    let mut by_hex: BTreeMap<String, &Blob> = BTreeMap::new();
    for b in &inputs {
        by_hex.insert(b.digest.hex().to_string(), b);
    }
    let input_bytes = by_hex.values().map(|b| b.size).sum();
    let blobs_dir = re::Directory {
        files: by_hex
            .iter()
            .map(|(hex, b)| re::FileNode {
                name: hex.clone(),
                digest: Some(super::digest(&b.digest, b.size)),
                is_executable: false,
                node_properties: None,
            })
            .collect(),
        ..Default::default()
    };
    let (blobs_digest, blobs_bytes) = super::message_digest(&blobs_dir);
    let root = re::Directory {
        files: vec![re::FileNode {
            name: PLAN_FILE.into(),
            digest: Some(super::digest(&plan_blob.digest, plan_blob.size)),
            is_executable: false,
            node_properties: None,
        }],
        directories: vec![re::DirectoryNode {
            name: BLOBS_DIR.into(),
            digest: Some(blobs_digest),
        }],
        ..Default::default()
    };
    let (root_digest, root_bytes) = super::message_digest(&root);
    let platform = platform(plan);
    // Both the deprecated fields and their successors: servers read either.
    #[allow(deprecated)]
    let command = re::Command {
        arguments: vec!["refine-sandbox".into(), PLAN_FILE.into()],
        output_paths: vec![OUT_DIR.into()],
        output_directories: vec![OUT_DIR.into()],
        platform: Some(platform.clone()),
        ..Default::default()
    };
    let (command_digest, command_bytes) = super::message_digest(&command);
    let action = re::Action {
        command_digest: Some(command_digest),
        input_root_digest: Some(root_digest),
        timeout: (plan.limits.timeout > 0).then_some(
            bazel_remote_apis::google::protobuf::Duration {
                seconds: plan.limits.timeout as i64,
                nanos: 0,
            },
        ),
        do_not_cache: fresh,
        salt: Vec::new(),
        platform: Some(platform),
    };
    let (digest, action_bytes) = super::message_digest(&action);
    let mut blobs = inputs;
    blobs.push(plan_blob);
    for b in [blobs_bytes, root_bytes, command_bytes, action_bytes] {
        blobs.push(Blob::bytes(b));
    }
    Ok(Prepared {
        action,
        digest,
        blobs,
        input_bytes,
    })
}

/// What a worker reads back from an action: the plan and the digests of
/// the blobs its input root holds.
pub struct Unpacked {
    pub plan: SandboxPlan,
    pub blobs: Vec<re::Digest>,
    pub platform: BTreeMap<String, String>,
}

/// The digests a plan names directly (a tree's files are checked once its
/// manifest is fetched: [`check_trees`]).
pub fn named(plan: &SandboxPlan) -> Vec<Digest> {
    let mut out = Vec::new();
    if let ImagePlan::Tarball { rootfs, .. } = &plan.image {
        out.push(rootfs.clone());
    }
    for m in &plan.mounts {
        if let MountSource::Blob(d) | MountSource::Tree(d) | MountSource::UnpackedWheel(d) =
            &m.source
        {
            out.push(d.clone());
        }
    }
    out.extend(plan.recipe_files.iter().map(|(_, d)| d.clone()));
    out
}

/// Parse an action's Command and input root (already fetched as bytes by
/// the caller's `read`), and check the plan names only blobs the input
/// root holds.
pub fn unpack(
    command: &re::Command,
    root: &re::Directory,
    read: &mut dyn FnMut(&re::Digest) -> Result<Vec<u8>, String>,
) -> Result<Unpacked, String> {
    if command.arguments.first().map(String::as_str) != Some("refine-sandbox") {
        return Err(format!(
            "not a refine action (its command is {:?})",
            command.arguments
        ));
    }
    let plan_node = root
        .files
        .iter()
        .find(|f| f.name == PLAN_FILE)
        .and_then(|f| f.digest.clone())
        .ok_or("the input root holds no plan.json")?;
    let blobs_node = root
        .directories
        .iter()
        .find(|d| d.name == BLOBS_DIR)
        .and_then(|d| d.digest.clone())
        .ok_or("the input root holds no blobs/")?;
    let plan_bytes = read(&plan_node)?;
    let plan: SandboxPlan =
        serde_json::from_slice(&plan_bytes).map_err(|e| format!("plan.json: {e}"))?;
    let blobs_dir: re::Directory = prost::Message::decode(read(&blobs_node)?.as_slice())
        .map_err(|e| format!("blobs/: {e}"))?;
    let mut held = BTreeSet::new();
    let mut blobs = Vec::new();
    for f in &blobs_dir.files {
        let d = f.digest.clone().ok_or("a blob without a digest")?;
        if d.hash != f.name {
            return Err(format!("blobs/{} is stored under another name", f.name));
        }
        held.insert(d.hash.clone());
        blobs.push(d);
    }
    for d in named(&plan) {
        if !held.contains(d.hex()) {
            return Err(format!(
                "the plan names blob {d}, which its input root does not hold"
            ));
        }
    }
    #[allow(deprecated)]
    let platform = command
        .platform
        .iter()
        .flat_map(|p| p.properties.iter())
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    Ok(Unpacked {
        plan,
        blobs,
        platform,
    })
}

/// The name a worker loads an image's root filesystem under: from the
/// digest of the blob it checked, never from the plan (a name the plan
/// chose could be one of another image already loaded, which `podman`
/// would then run instead).
pub fn worker_tag(rootfs: &Digest) -> String {
    format!("localhost/refine-image/rootfs:{}", &rootfs.hex()[..32])
}

/// The architecture of a hybrid plan's cross tools.
pub fn cross_host(plan: &SandboxPlan) -> Option<Arch> {
    match &plan.image {
        ImagePlan::Tarball { cross_host, .. } => *cross_host,
        ImagePlan::Oci { .. } => None,
    }
}

/// Whether a worker that runs the programs of `runs` (its own machine's
/// and those it has qemu handlers for) can run the plan: the target's
/// programs and, for a hybrid image, its cross tools.
pub fn check_runnable(plan: &SandboxPlan, runs: &[Arch]) -> Result<(), String> {
    if !runs.contains(&plan.arch) {
        return Err(format!(
            "the plan is for {}, which this worker does not run",
            plan.arch
        ));
    }
    if let Some(h) = cross_host(plan)
        && !runs.contains(&h)
    {
        return Err(format!(
            "the plan's image is hybrid: it holds {h} cross compilers, which this worker does not run \
             (on a native {} machine build with `--toolchain emulated`; its plans need no cross tools)",
            plan.arch
        ));
    }
    Ok(())
}

/// What a worker checks of a plan before it uses any of it (the plan
/// comes from the server: untrusted): recipe files are plain relative
/// paths (they are written under the scratch directory), mounts land on
/// plain absolute container paths, an OCI image is pinned.
pub fn check_for_worker(plan: &SandboxPlan) -> Result<(), String> {
    let plain_rel = |p: &str| {
        !p.is_empty()
            && !p.starts_with('/')
            && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
    };
    for (rel, _) in &plan.recipe_files {
        if !plain_rel(rel) {
            return Err(format!("recipe file {rel:?} is not a plain relative path"));
        }
    }
    for m in &plan.mounts {
        let c = &m.container;
        if !c.starts_with('/') || !plain_rel(&c[1..]) || c.contains([':', ',']) {
            return Err(format!("mount point {c:?} is not a plain absolute path"));
        }
    }
    match &plan.image {
        // Loaded under a name the worker makes from the blob's digest
        // ([`worker_tag`]), whatever the plan calls it.
        ImagePlan::Tarball { .. } => {}
        ImagePlan::Oci { reference } => {
            if !reference.contains("@sha256:") || reference.contains(char::is_whitespace) {
                return Err(format!("image {reference} is not pinned by digest"));
            }
        }
    }
    Ok(())
}

/// Check that every file of the plan's trees is among the input root's
/// blobs (once the manifests are in the local store).
pub fn check_trees(
    plan: &SandboxPlan,
    store: &LocalStore,
    held: &[re::Digest],
) -> Result<(), String> {
    let held: BTreeSet<&str> = held.iter().map(|d| d.hash.as_str()).collect();
    for m in &plan.mounts {
        if let MountSource::Tree(d) = &m.source {
            let tree = store.cas.tree(d).map_err(io)?;
            for (path, fd, _) in tree.files() {
                if !held.contains(fd.hex()) {
                    return Err(format!(
                        "{}: {path} names blob {fd}, which the input root does not hold",
                        m.container
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Limits;
    use crate::sched::sandbox::PlannedMount;

    fn plan() -> SandboxPlan {
        let rootfs = crate::key::sha256_bytes(b"rootfs");
        SandboxPlan {
            name: String::new(),
            label: "//wheels:x".into(),
            image: ImagePlan::Tarball {
                tag: format!("localhost/refine-image/bookworm:{}", &rootfs.hex()[..32]),
                rootfs,
                cross_host: None,
            },
            arch: Arch::S390x,
            foreign: true,
            mounts: vec![PlannedMount {
                source: MountSource::Recipes,
                container: "/refine/ws".into(),
                read_only: true,
            }],
            recipe_files: vec![("recipes/pep517.sh".into(), crate::key::sha256_bytes(b"r"))],
            env: Default::default(),
            command: vec!["bash".into()],
            limits: Limits::default(),
            refuse_nested_userns: true,
            pids_limit: 4096,
        }
    }

    #[test]
    fn a_worker_refuses_a_plan_that_reaches_outside_its_scratch_or_an_unpinned_image() {
        assert!(check_for_worker(&plan()).is_ok());
        let mut p = plan();
        p.recipe_files[0].0 = "../../etc/cron.d/x".into();
        assert!(check_for_worker(&p).unwrap_err().contains("plain relative"));
        let mut p = plan();
        p.recipe_files[0].0 = "/etc/passwd".into();
        assert!(check_for_worker(&p).is_err());
        let mut p = plan();
        p.mounts[0].container = "/refine/../etc".into();
        assert!(check_for_worker(&p).unwrap_err().contains("mount point"));
        let mut p = plan();
        p.mounts[0].container = "/x:/y".into();
        assert!(check_for_worker(&p).is_err());
        assert_eq!(
            worker_tag(&crate::key::sha256_bytes(b"rootfs")),
            format!(
                "localhost/refine-image/rootfs:{}",
                &crate::key::sha256_bytes(b"rootfs").hex()[..32]
            )
        );
        let mut p = plan();
        p.image = ImagePlan::Oci {
            reference: "docker.io/library/debian:12".into(),
        };
        assert!(check_for_worker(&p).unwrap_err().contains("pinned"));
    }

    #[test]
    fn the_action_names_every_input_and_a_rebuild_is_another_action() {
        let d = tempfile::tempdir().unwrap();
        let store = LocalStore::open(d.path()).unwrap();
        let rootfs = store.cas.put_bytes(b"rootfs").unwrap();
        let src = store.cas.put_bytes(b"sdist").unwrap();
        let mut p = plan();
        p.image = ImagePlan::Tarball {
            tag: format!("localhost/refine-image/bookworm:{}", &rootfs.hex()[..32]),
            rootfs: rootfs.clone(),
            cross_host: None,
        };
        p.mounts.push(PlannedMount {
            source: MountSource::Blob(src.clone()),
            container: "/refine/src/x.tar.gz".into(),
            read_only: true,
        });
        p.recipe_files = vec![(
            "recipes/pep517.sh".into(),
            crate::key::sha256_bytes(b"echo"),
        )];
        let recipe = |_: &str, _: &Digest| Some(b"echo".to_vec());
        let a = prepare(&p, &store, &recipe, false).unwrap();
        let names: Vec<String> = a.blobs.iter().map(|b| b.digest.hex().to_string()).collect();
        for d in [&rootfs, &src, &crate::key::sha256_bytes(b"echo")] {
            assert!(names.contains(&d.hex().to_string()), "{d} missing");
        }
        // The worker reads the plan back, and every blob it names is held.
        let blob = |d: &re::Digest| {
            a.blobs
                .iter()
                .find(|b| b.digest.hex() == d.hash)
                .map(|b| match &b.src {
                    super::super::cas::Src::Bytes(v) => v.as_ref().clone(),
                    super::super::cas::Src::File(f) => std::fs::read(f).unwrap(),
                })
                .ok_or_else(|| format!("no blob {}", d.hash))
        };
        let command: re::Command = prost::Message::decode(
            blob(a.action.command_digest.as_ref().unwrap())
                .unwrap()
                .as_slice(),
        )
        .unwrap();
        let root: re::Directory = prost::Message::decode(
            blob(a.action.input_root_digest.as_ref().unwrap())
                .unwrap()
                .as_slice(),
        )
        .unwrap();
        let mut read = blob;
        let un = unpack(&command, &root, &mut read).unwrap();
        assert_eq!(un.plan.label, "//wheels:x");
        assert_eq!(un.platform["ISA"], "s390x");
        assert_eq!(un.platform[IMAGE_KEY], rootfs.to_string());
        assert!(!un.platform.contains_key(HOST_KEY));
        // A rebuild is another action (not cached on the server).
        let fresh = prepare(&p, &store, &recipe, true).unwrap();
        assert_ne!(fresh.digest, a.digest);
        assert!(fresh.action.do_not_cache);
        // A changed input is another action.
        p.env.insert("X".into(), "1".into());
        assert_ne!(
            prepare(&p, &store, &recipe, false).unwrap().digest,
            a.digest
        );
    }

    #[test]
    fn a_hybrid_plan_asks_for_the_machine_of_its_cross_tools_and_only_such_a_worker_runs_it() {
        let mut p = plan();
        assert!(!platform(&p).properties.iter().any(|q| q.name == HOST_KEY));
        let ImagePlan::Tarball { cross_host: h, .. } = &mut p.image else {
            unreachable!()
        };
        *h = Some(Arch::X86_64);
        let props: Vec<(String, String)> = platform(&p)
            .properties
            .into_iter()
            .map(|q| (q.name, q.value))
            .collect();
        assert!(
            props.contains(&(HOST_KEY.into(), "x86-64".into())),
            "{props:?}"
        );
        assert!(props.contains(&("ISA".into(), "s390x".into())), "{props:?}");
        // An x86-64 machine with qemu's s390x handler runs it; a native
        // s390x machine (no x86-64 programs) does not, and says what to do.
        assert!(check_runnable(&p, &[Arch::X86_64, Arch::S390x]).is_ok());
        let e = check_runnable(&p, &[Arch::S390x]).unwrap_err();
        assert!(
            e.contains("hybrid") && e.contains("--toolchain emulated"),
            "{e}"
        );
        // The emulated toolchain's plan runs there.
        let mut q = plan();
        q.image = ImagePlan::Tarball {
            tag: "t".into(),
            rootfs: crate::key::sha256_bytes(b"rootfs"),
            cross_host: None,
        };
        assert!(check_runnable(&q, &[Arch::S390x]).is_ok());
        assert!(
            check_runnable(&q, &[Arch::X86_64])
                .unwrap_err()
                .contains("does not run")
        );
        // The plan travels with it (the worker reads it back).
        let back: SandboxPlan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(cross_host(&back), Some(Arch::X86_64));
    }
}
