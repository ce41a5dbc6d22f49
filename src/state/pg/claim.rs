//! One run per (store, shard) at a time, with PostgreSQL advisory locks held on the run's
//! connection: a host that dies lets go of them with its connection. A run of shard K/N holds
//! the store's lock shared and shard K's alone; a run of everyone, a replay, `state prune` and
//! `state copy` hold the store's lock alone. The split (N) is kept in `meta`, and changes only
//! while no run holds the store.

use tokio_postgres::Client;

use super::super::{Claim, StoreError};
use super::connect::why;

/// Takes the locks `claim` needs on `client`'s session.
pub async fn claim(client: &Client, key: i32, claim: Claim, shown: &str) -> Result<(), StoreError> {
    let unusable = |why: String| StoreError::Unusable {
        path: shown.into(),
        why,
    };
    let Claim::Run(Some((k, n))) = claim else {
        if !try_lock(client, key, 0, false).await.map_err(unusable)? {
            return Err(held(client, key, None, shown).await);
        }
        return Ok(());
    };
    // Hosts starting at once take their shards one after another: the first records the
    // split before the next reads it.
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| unusable(why(e)))?;
    let claimed = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1, -2)", &[&key])
            .await
            .map_err(|e| unusable(why(e)))?;
        split(client, key, n, shown).await?;
        if !try_lock(client, key, 0, true).await.map_err(unusable)? {
            return Err(held(client, key, None, shown).await);
        }
        if !try_lock(client, key, k as i64, false)
            .await
            .map_err(unusable)?
        {
            return Err(held(client, key, Some((k, n)), shown).await);
        }
        Ok(())
    }
    .await;
    let end = if claimed.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    client
        .batch_execute(end)
        .await
        .map_err(|e| unusable(why(e)))?;
    claimed
}

/// Records the split `n` when the store has none or another and no run holds it; refuses
/// another split while runs of the stored one go on.
async fn split(client: &Client, key: i32, n: u64, shown: &str) -> Result<(), StoreError> {
    let unusable = |why: String| StoreError::Unusable {
        path: shown.into(),
        why,
    };
    let stored = shards(client).await.map_err(unusable)?;
    if stored == Some(n) {
        return Ok(());
    }
    if !try_lock(client, key, 0, false).await.map_err(unusable)? {
        // Runs hold the store: they decide the split, unless it is this one after all.
        return match shards(client).await.map_err(unusable)? {
            Some(s) if s == n => Ok(()),
            Some(s) => Err(StoreError::Refused {
                path: shown.into(),
                why: format!(
                    "it is split into {s} shards and runs of that split hold it now: pass --shard K/{s}, or change the split once no run holds the store"
                ),
            }),
            None => Err(held(client, key, None, shown).await),
        };
    }
    let set = client
        .execute(
            "INSERT INTO meta (key, value) VALUES ('shards', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&n.to_string()],
        )
        .await
        .map_err(why);
    // Shared before the sole lock goes, so no run of another split starts in between.
    let shared = try_lock(client, key, 0, true).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1, 0)", &[&key])
        .await;
    set.map_err(unusable)?;
    shared.map_err(unusable)?;
    Ok(())
}

/// The split recorded in `meta`.
async fn shards(client: &Client) -> Result<Option<u64>, String> {
    let row = client
        .query_opt("SELECT value FROM meta WHERE key = 'shards'", &[])
        .await
        .map_err(why)?;
    Ok(row.and_then(|r| r.get::<_, String>(0).parse().ok()))
}

async fn try_lock(client: &Client, key: i32, id: i64, shared: bool) -> Result<bool, String> {
    let sql = match shared {
        true => "SELECT pg_try_advisory_lock_shared($1, $2::int4)",
        false => "SELECT pg_try_advisory_lock($1, $2::int4)",
    };
    let row = client
        .query_one(sql, &[&key, &(id as i32)])
        .await
        .map_err(why)?;
    Ok(row.get(0))
}

/// Who holds the store (or its shard): each holder's `journey on HOST pid N`.
pub async fn holders(
    client: &impl tokio_postgres::GenericClient,
    key: i32,
    id: i64,
) -> Result<Vec<String>, String> {
    let rows = client
        .query(
            "SELECT a.application_name, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.classid = ($1::int8)::oid AND l.objid = ($2::int8)::oid
               AND a.pid <> pg_backend_pid()
             ORDER BY a.backend_start",
            &[&(key as i64), &id],
        )
        .await
        .map_err(why)?;
    Ok(rows
        .iter()
        .map(|r| {
            let name: Option<String> = r.get(0);
            name.filter(|n| !n.is_empty())
                .unwrap_or_else(|| "a session without a name".into())
        })
        .collect())
}

async fn held(client: &Client, key: i32, shard: Option<(u64, u64)>, shown: &str) -> StoreError {
    let id = shard.map_or(0, |(k, _)| k as i64);
    let who = holders(client, key, id).await.unwrap_or_default();
    let mut holder = match who.is_empty() {
        true => "a session that has just let go; try again".to_string(),
        false => who.join(", "),
    };
    if let Some((k, n)) = shard {
        holder = format!("{holder}, shard {k}/{n}");
    }
    StoreError::Locked {
        path: shown.into(),
        holder,
    }
}
