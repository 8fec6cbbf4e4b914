//! `snapguard key list|add|remove|passwd` and `cat key`.

use crate::args::{GlobalArgs, KeyCommand};
use crate::commands::{hostname, open, username};
use crate::render;
use crate::secrets;
use anyhow::Result;
use serde_json::{json, Value};
use snapguard_crypto::{Argon2Params, SlotKind, SlotMeta};
use snapguard_engine::lock::LockKind;
use snapguard_engine::{Repository, Secret};

fn slot_json(
    repo: &Repository,
    id: &snapguard_format::SlotId,
    slot: Option<&snapguard_crypto::KeySlot>,
    meta: Option<&SlotMeta>,
) -> Value {
    let kind = match slot.map(|s| &s.kind) {
        Some(SlotKind::Passphrase { params, .. }) => {
            json!({"type": "passphrase", "kdf": "argon2id",
            "memory_kib": params.memory_kib, "iterations": params.iterations, "parallelism": params.parallelism})
        }
        Some(SlotKind::KeyFile { .. }) => json!({"type": "key-file"}),
        None => json!({"type": "unknown"}),
    };
    json!({
        "id": id.to_hex(),
        "current": *id == repo.opened_slot(),
        "kind": kind,
        "cipher": slot.map(|s| s.cipher.name()),
        "label": meta.map(|m| m.label.clone()),
        "hostname": meta.map(|m| m.hostname.clone()),
        "username": meta.map(|m| m.username.clone()),
        "created": meta.map(|m| render::rfc3339(snapguard_format::Timestamp { secs: m.created_unix, nanos: 0 })),
        "capabilities": meta.map(|m| m.capabilities.clone()),
    })
}

pub fn cat(repo: &Repository, spec: &str) -> Result<i32> {
    let id = repo.find_key_slot(spec)?;
    for k in repo.key_slots()? {
        if k.id == id {
            println!(
                "{}",
                serde_json::to_string_pretty(&slot_json(
                    repo,
                    &k.id,
                    k.slot.as_ref(),
                    k.meta.as_ref()
                ))?
            );
        }
    }
    Ok(0)
}

fn meta(label: &str) -> SlotMeta {
    SlotMeta {
        label: label.to_string(),
        hostname: hostname(),
        username: username(),
        created_unix: render::now().secs,
        capabilities: vec!["read".into(), "write".into()],
    }
}

pub fn run(g: &GlobalArgs, cmd: &KeyCommand) -> Result<i32> {
    let (repo, _lock) = open(g, LockKind::Shared, "key")?;
    match cmd {
        KeyCommand::List => {
            let slots = repo.key_slots()?;
            if g.json {
                let v: Vec<Value> = slots
                    .iter()
                    .map(|k| slot_json(&repo, &k.id, k.slot.as_ref(), k.meta.as_ref()))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            println!(
                " {:<10} {:<11} {:<20} {:<12} {:<16} Label",
                "ID", "Type", "Created", "User", "Host"
            );
            for snapguard_engine::KeySlotInfo { id, slot, meta: m } in &slots {
                let kind = match slot.as_ref().map(|s| &s.kind) {
                    Some(SlotKind::Passphrase { .. }) => "passphrase",
                    Some(SlotKind::KeyFile { .. }) => "key-file",
                    None => "unknown",
                };
                let cur = if *id == repo.opened_slot() { "*" } else { " " };
                let (created, user, host, label) = match m {
                    Some(m) => (
                        render::local(snapguard_format::Timestamp {
                            secs: m.created_unix,
                            nanos: 0,
                        }),
                        m.username.clone(),
                        m.hostname.clone(),
                        m.label.clone(),
                    ),
                    None => Default::default(),
                };
                println!(
                    "{cur}{:<10} {:<11} {:<20} {:<12} {:<16} {}",
                    id.short(),
                    kind,
                    created,
                    user,
                    host,
                    label
                );
            }
            Ok(0)
        }
        KeyCommand::Add(a) => {
            let (secret, kdf) = match &a.new_key_file {
                Some(path) => (
                    Secret::KeyFile(secrets::load_or_create_key_file(path)?),
                    Argon2Params::DEFAULT,
                ),
                None => (
                    Secret::Password(secrets::new_password(&a.secret)?),
                    secrets::kdf_params(&a.secret.kdf),
                ),
            };
            let id = repo.add_key_slot(&secret, kdf, &meta(&a.label))?;
            if g.json {
                println!("{}", json!({"id": id.to_hex()}));
            } else {
                println!("added key slot {}", id.short());
            }
            Ok(0)
        }
        KeyCommand::Remove { id } => {
            let id = repo.find_key_slot(id)?;
            repo.remove_key_slot(&id)?;
            if !g.quiet {
                println!("removed key slot {}", id.short());
            }
            Ok(0)
        }
        KeyCommand::Passwd(a) => {
            let pw = secrets::new_password(a)?;
            repo.ensure_deletable("key passwd (it removes the old key slot)")?;
            let old = repo.opened_slot();
            // Add first, remove second: a crash in between leaves both passwords working.
            let new = repo.add_key_slot(
                &Secret::Password(pw),
                secrets::kdf_params(&a.kdf),
                &meta("passwd"),
            )?;
            repo.remove_key_slot(&old)?;
            if !g.quiet {
                println!(
                    "password changed: key slot {} replaced by {}",
                    old.short(),
                    new.short()
                );
            }
            Ok(0)
        }
    }
}
