//! The writes in the redo file and not yet in the open transaction. A delivery's outcome that
//! comes while its "before" record is still held joins it: a delivery sent and answered within
//! one transaction is one row inserted once, instead of inserted and then updated.

use std::hash::BuildHasher;

use super::redo::{Statements, Write};

/// Held writes; see the module.
#[derive(Default)]
pub(super) struct Held {
    /// Writes to make, in the order they came (an outcome joined with its "before" record
    /// stands where the outcome came).
    ready: Vec<Pend>,
    /// "Before" records whose outcome has not come, by a hash of their entry and step. They
    /// touch rows nothing else held touches, so they may be made after writes that came later.
    waiting: foldhash::HashMap<u64, Write>,
    /// Writes made, to be freed by the thread that made them ([`Held::spent`]).
    spent: Vec<Write>,
}

/// A held write, or a "before" record with its delivery's outcome.
enum Pend {
    One(Write),
    Sent(Write, Write),
}

fn hash(entry: &str, step: &str) -> u64 {
    foldhash::quality::FixedState::with_seed(0x6865_6c64).hash_one((entry, step))
}

impl Held {
    /// Holds `w`; an outcome whose "before" record waits joins it.
    pub fn push(&mut self, w: Write) {
        match &w {
            Write::Before(b) => {
                // Another record under the same hash (the same delivery sent again, or another
                // that meets its hash) is made first, in order.
                if let Some(earlier) = self.waiting.insert(hash(&b.entry, &b.step), w) {
                    self.ready.push(Pend::One(earlier));
                }
            }
            Write::After { entry, step, .. } => {
                let h = hash(entry, step);
                match self.waiting.get(&h) {
                    Some(b) if b.is_of(entry, step) => {
                        let before = self.waiting.remove(&h).expect("just found");
                        self.ready.push(Pend::Sent(before, w));
                    }
                    _ => self.ready.push(Pend::One(w)),
                }
            }
            _ => self.ready.push(Pend::One(w)),
        }
    }

    /// Makes the held writes in the open transaction, stamped `now`, except the "before"
    /// records still waiting for their outcome (the writer does this while its queue is empty).
    pub fn apply_ready(
        &mut self,
        statements: &mut Statements<'_>,
        now: &str,
    ) -> rusqlite::Result<()> {
        for p in self.ready.drain(..) {
            match p {
                Pend::One(w) => {
                    statements.apply(&w, now)?;
                    self.spent.push(w);
                }
                Pend::Sent(before, after) => {
                    statements.apply_sent(&before, &after, now)?;
                    self.spent.push(before);
                    self.spent.push(after);
                }
            }
        }
        Ok(())
    }

    /// Makes every held write in the open transaction (before a read, or a commit).
    pub fn apply(&mut self, statements: &mut Statements<'_>, now: &str) -> rusqlite::Result<()> {
        self.apply_ready(statements, now)?;
        for (_, w) in self.waiting.drain() {
            statements.apply(&w, now)?;
            self.spent.push(w);
        }
        Ok(())
    }

    /// The writes made so far, taken.
    pub fn spent(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.spent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::state::schema::migrate(&mut conn).unwrap().unwrap();
        conn
    }

    fn rows(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT * FROM deliveries ORDER BY entry_key, step")
            .unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// What a run may send the writer within one transaction: fresh deliveries answered, one
    /// sent twice (a deferral then a new try, attempts adding up), one not answered yet, one
    /// answered in an earlier transaction.
    #[test]
    fn joined_writes_leave_the_rows_that_one_by_one_writes_leave() {
        let earlier = [Write::before_of("j:c4", "a")];
        let writes = [
            Write::before_of("j:c1", "a"),
            Write::before_of("j:c2", "a"),
            Write::after_of("j:c1", "a", "ok", 1),
            Write::before_of("j:c3", "a"),
            Write::after_of("j:c3", "a", "deferred", 2),
            Write::before_of("j:c3", "a"),
            Write::after_of("j:c4", "a", "failed", 3),
            Write::after_of("j:c3", "a", "ok", 1),
            Write::before_of("j:c1", "b"),
        ];
        let (one_by_one, joined) = (store(), store());
        for conn in [&one_by_one, &joined] {
            let mut st = Statements::prepare(conn).unwrap();
            for w in &earlier {
                st.apply(w, "t0").unwrap();
            }
        }
        let mut st = Statements::prepare(&one_by_one).unwrap();
        for w in &writes {
            st.apply(w, "t1").unwrap();
        }
        let mut st = Statements::prepare(&joined).unwrap();
        let mut held = Held::default();
        for w in writes.iter().cloned() {
            held.push(w);
        }
        // c1/a and both tries of c3/a joined their outcomes; c2/a and c1/b wait for theirs.
        assert_eq!((held.ready.len(), held.waiting.len()), (4, 2));
        held.apply(&mut st, "t1").unwrap();
        assert_eq!(
            held.spent().len(),
            writes.len(),
            "every write made is handed back, to be freed where it was made"
        );
        assert_eq!(rows(&joined), rows(&one_by_one));
        assert!(
            rows(&joined)[3].contains("Integer(3)"),
            "{:?}",
            rows(&joined)
        );
    }
}
