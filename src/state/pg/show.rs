//! `journey state show|prune` on a PostgreSQL store: the same summary as a file's, read in one
//! snapshot while runs go on, and pruning while no run holds the store.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_postgres::Client;

use super::super::show::{Summary, Waiting};
use super::super::{Claim, Opening, StoreError};
use super::connect::{connect, why};
use super::target::Target;

/// Connects to a store that must already exist.
async fn existing(target: &Target, how: &Opening) -> Result<Client, StoreError> {
    let shown = target.shown();
    let unusable = |why: String| StoreError::Unusable {
        path: shown.clone(),
        why,
    };
    let client = connect(target, target.password(&how.env).as_deref(), how.timeout)
        .await
        .map_err(unusable)?;
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'meta')",
            &[&target.schema],
        )
        .await
        .map_err(|e| unusable(why(e)))?
        .get(0);
    if !exists {
        return Err(unusable(format!(
            "there is no state store in schema `{}` of database `{}` (a run creates it)",
            target.schema, target.dbname
        )));
    }
    Ok(client)
}

/// What the store holds, and which runs hold it now.
pub async fn show(target: &Target, how: &Opening) -> Result<Summary, StoreError> {
    let shown = target.shown();
    let mut client = existing(target, how).await?;
    summary(&mut client, target)
        .await
        .map_err(|why| StoreError::Unusable { path: shown, why })
}

async fn summary(client: &mut Client, target: &Target) -> Result<Summary, String> {
    // One snapshot: while runs write, every count comes from the same moment.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(why)?;
    let schema_version = super::schema::version(&tx).await?;
    let counts = |sql: &'static str| {
        let tx = &tx;
        async move {
            let rows = tx.query(sql, &[]).await.map_err(why)?;
            Ok::<_, String>(
                rows.iter()
                    .map(|r| {
                        (
                            r.get::<_, Option<String>>(0).unwrap_or_default(),
                            r.get::<_, i64>(1),
                        )
                    })
                    .collect::<BTreeMap<_, _>>(),
            )
        }
    };
    let entries = counts(
        // An entry interrupted before it ended or parked has deliveries and no row yet.
        "SELECT status, COUNT(*) FROM (SELECT status FROM entries UNION ALL SELECT 'active' FROM
         (SELECT DISTINCT entry_key FROM deliveries WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.key = entry_key)) i) s
         GROUP BY status ORDER BY status",
    )
    .await?;
    let ended_by_outcome = counts(
        "SELECT outcome, COUNT(*) FROM entries WHERE status = 'done' GROUP BY outcome ORDER BY outcome",
    )
    .await?;
    let deliveries =
        counts("SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status").await?;
    let waiting = tx
        .query(
            "SELECT key, journey, customer, due FROM entries WHERE status = 'waiting' ORDER BY due, key LIMIT 20",
            &[],
        )
        .await
        .map_err(why)?
        .iter()
        .map(|r| Waiting {
            key: r.get(0),
            journey: r.get(1),
            customer: r.get(2),
            due: r.get::<_, Option<String>>(3).unwrap_or_default(),
        })
        .collect();
    let key = super::schema::store_key(&target.dbname, &target.schema);
    let mut runs = super::claim::holders(&tx, key, 0).await?;
    runs.dedup();
    tx.commit().await.map_err(why)?;
    Ok(Summary {
        store: target.shown(),
        schema_version,
        entries,
        ended_by_outcome,
        deliveries,
        waiting,
        runs: Some(runs),
    })
}

/// Deletes ended entries (and their deliveries) last updated more than `older_than` ago,
/// holding the whole store.
pub async fn prune(
    target: &Target,
    older_than: Duration,
    how: &Opening,
) -> Result<(usize, usize), StoreError> {
    let shown = target.shown();
    let unusable = |why: String| StoreError::Unusable {
        path: shown.clone(),
        why,
    };
    let mut client = existing(target, how).await?;
    let key = super::schema::store_key(&target.dbname, &target.schema);
    super::claim::claim(&client, key, Claim::Whole, &shown).await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(older_than).unwrap_or_default();
    let cutoff = crate::clock::rfc3339(cutoff);
    let tx = client.transaction().await.map_err(|e| unusable(why(e)))?;
    let old = "SELECT key FROM entries WHERE status IN ('done', 'failed') AND updated < $1";
    let deliveries = tx
        .execute(
            &format!("DELETE FROM deliveries WHERE entry_key IN ({old})"),
            &[&cutoff],
        )
        .await
        .map_err(|e| unusable(why(e)))?;
    let entries = tx
        .execute(
            "DELETE FROM entries WHERE status IN ('done', 'failed') AND updated < $1",
            &[&cutoff],
        )
        .await
        .map_err(|e| unusable(why(e)))?;
    tx.commit().await.map_err(|e| unusable(why(e)))?;
    Ok((entries as usize, deliveries as usize))
}
