//! SQLite statements run on a connection's handle from the caller's own thread.
//!
//! sqlx's SQLite driver keeps every connection on a thread of its own and hands each
//! statement to that thread and its result back: two thread hand-offs per statement,
//! 30–60 µs on a small VM (docs/benchmarks.md, round 6), against a few microseconds
//! for SQLite to run a one-row write. An order is sixteen writer statements, and a
//! group of 64 writes waits for each of them in turn. So a write takes the
//! connection's handle from that thread (`lock_handle`: one hand-off; the thread waits
//! on the lock meanwhile) and runs its statements on it directly: the file database's
//! writer holds its connection's handle for as long as it runs (`store::group_commit`);
//! a write off the hot path, and the in-memory database's writer, take it for one
//! transaction, whose BEGIN and COMMIT stay with sqlx.
//!
//! A [`Direct`] prepares each statement once and keeps it for the connection's next
//! transactions when given [`Statements`] to keep them in (the writer's own
//! connection), else finalizes them when it ends. Every kept statement is finalized
//! before the connection closes: sqlx closes it with `sqlite3_close`, which refuses
//! (and sqlx panics) while a prepared statement is left.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use libsqlite3_sys as ffi;
use sqlx::SqlStr;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::sqlite::LockedSqliteHandle;

use super::sql::exec::{Args, Conn, Row, Value};

/// Statements kept prepared across the transactions of one connection, at most this
/// many; past it they are all finalized and prepared again as used (the store's
/// statements are a few dozen texts; some are built per call).
const KEPT_STATEMENTS: usize = 256;

/// A write transaction's connection while its handle is locked from sqlx's thread.
pub struct Direct {
    db: NonNull<ffi::sqlite3>,
    /// Prepared statements by their text; those left on drop are finalized.
    prepared: HashMap<Box<str>, Prepared>,
}

/// The statements of one connection kept prepared between its transactions; to be
/// [`finalize`](Statements::finalize)d before the connection closes.
#[derive(Default)]
pub struct Statements(HashMap<Box<str>, Prepared>);

// SAFETY: the statements are only used through a `Direct`, under the connection's
// lock, by one task at a time.
unsafe impl Send for Statements {}

impl Statements {
    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Finalizes every statement kept; `_locked` is their connection's handle, held
    /// (as finalizing needs).
    pub fn finalize(&mut self, _locked: &mut LockedSqliteHandle<'_>) {
        for (_, prepared) in self.0.drain() {
            finalize(prepared);
        }
    }
}

struct Prepared {
    stmt: NonNull<ffi::sqlite3_stmt>,
    /// The result's column names, shared by its rows.
    columns: Arc<[Box<str>]>,
}

// SAFETY: a `Direct` is used by one task at a time (`&mut self` everywhere), and the
// connection's own thread does not touch the handle while it is locked.
unsafe impl Send for Direct {}

impl Direct {
    /// Runs `work` on the connection's handle, locked from sqlx's thread for its
    /// length. Every statement `work` runs goes straight to SQLite on this thread.
    /// With `kept` (this connection's), its statements are used and the new ones
    /// kept there; else they are finalized at the end.
    pub async fn with<R>(
        locked: &mut LockedSqliteHandle<'_>,
        mut kept: Option<&mut Statements>,
        work: impl AsyncFnOnce(&mut Direct) -> R,
    ) -> R {
        let mut direct = Direct {
            db: locked.as_raw_handle(),
            prepared: kept
                .as_deref_mut()
                .map(|k| std::mem::take(&mut k.0))
                .unwrap_or_default(),
        };
        let result = work(&mut direct).await;
        if let Some(kept) = kept {
            kept.0 = std::mem::take(&mut direct.prepared);
        }
        // `direct` finalizes what it still has when it goes, before `locked` can:
        // everything without `kept`, or after a panic in `work`.
        result
    }

    /// Whether the connection is outside any transaction: SQLite rolled the write's
    /// transaction back on its own (a full disk, an I/O error), and statements run
    /// since then committed one by one.
    pub fn in_autocommit(&self) -> bool {
        // SAFETY: the handle is open and locked for this `Direct`.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) != 0 }
    }

    /// Runs `sql` with `args`; keeps its rows when `rows` is given (the first one only
    /// when `first`); returns the rows it changed.
    fn run(
        &mut self,
        sql: &str,
        args: &[Value],
        mut rows: Option<&mut Vec<DirectRow>>,
        first: bool,
    ) -> Result<u64, sqlx::Error> {
        tracing::trace!(statement = sql, "direct statement");
        if !self.prepared.contains_key(sql) {
            let (prepared, rest) = self.prepare(sql)?;
            let Some(prepared) = prepared else {
                return Ok(0);
            };
            if !rest
                .trim_matches(|c: char| c.is_whitespace() || c == ';')
                .is_empty()
            {
                // Several statements in one text: each prepared, run and finalized in
                // turn (none of the store's writes is written so; kept for the trait).
                let changed = self.step(&prepared, args, rows.as_deref_mut(), first);
                finalize(prepared);
                return Ok(changed? + self.run(rest, args, rows, first)?);
            }
            if self.prepared.len() >= KEPT_STATEMENTS {
                for (_, old) in self.prepared.drain() {
                    finalize(old);
                }
            }
            self.prepared.insert(sql.into(), prepared);
        }
        let prepared = &self.prepared[sql];
        self.step(prepared, args, rows, first)
    }

    /// Prepares the first statement of `sql`; returns it (none for a blank text) and
    /// the text after it.
    fn prepare<'s>(&self, sql: &'s str) -> Result<(Option<Prepared>, &'s str), sqlx::Error> {
        let len = c_int::try_from(sql.len())
            .map_err(|_| sqlx::Error::Protocol("a statement longer than 2 GiB".into()))?;
        let mut stmt = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        // SAFETY: `sql` outlives the call, its length is given, and `stmt` and `tail`
        // are written by SQLite.
        let code = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                &mut tail,
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(self.error(code));
        }
        // SAFETY: `tail` points into `sql` (at its end at most).
        let used = unsafe { tail.offset_from(sql.as_ptr().cast()) };
        let rest = &sql[usize::try_from(used).unwrap_or(sql.len())..];
        let Some(stmt) = NonNull::new(stmt) else {
            return Ok((None, rest));
        };
        // SAFETY: a prepared statement; names are copied before the next call.
        let columns = unsafe {
            let count = ffi::sqlite3_column_count(stmt.as_ptr());
            (0..count)
                .map(|i| {
                    let name = ffi::sqlite3_column_name(stmt.as_ptr(), i);
                    if name.is_null() {
                        Box::from("")
                    } else {
                        Box::from(CStr::from_ptr(name).to_string_lossy().as_ref())
                    }
                })
                .collect()
        };
        Ok((Some(Prepared { stmt, columns }), rest))
    }

    /// Binds `args`, steps `prepared` to its end (or its first row), and resets it.
    fn step(
        &self,
        prepared: &Prepared,
        args: &[Value],
        rows: Option<&mut Vec<DirectRow>>,
        first: bool,
    ) -> Result<u64, sqlx::Error> {
        let stmt = prepared.stmt.as_ptr();
        let result = self.bind(stmt, args).and_then(|()| {
            let mut rows = rows;
            // SAFETY: a prepared statement of this open, locked handle.
            let readonly = unsafe { ffi::sqlite3_stmt_readonly(stmt) != 0 };
            loop {
                // SAFETY: as above.
                match unsafe { ffi::sqlite3_step(stmt) } {
                    ffi::SQLITE_ROW => {
                        if let Some(rows) = rows.as_deref_mut() {
                            rows.push(DirectRow::read(stmt, &prepared.columns));
                            // A write runs to its end whatever it returns.
                            if first && readonly {
                                break;
                            }
                        }
                    }
                    ffi::SQLITE_DONE => break,
                    code => return Err(self.error(code)),
                }
            }
            // SAFETY: as above.
            Ok(if readonly {
                0
            } else {
                u64::try_from(unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) }).unwrap_or(0)
            })
        });
        // SAFETY: as above. Reset ends the statement (and its read of the database);
        // its result repeats a step's error, already taken.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        result
    }

    /// Binds `args` to the statement's parameters: `$N` takes the N-th value, as with
    /// sqlx; an unnamed `?` takes the value at its position.
    fn bind(&self, stmt: *mut ffi::sqlite3_stmt, args: &[Value]) -> Result<(), sqlx::Error> {
        // SAFETY: a prepared statement of this handle.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
        for i in 1..=count {
            // SAFETY: `i` is within the statement's parameters.
            let name = unsafe { ffi::sqlite3_bind_parameter_name(stmt, i) };
            let n = if name.is_null() {
                usize::try_from(i).unwrap_or(0)
            } else {
                // SAFETY: SQLite's NUL-terminated name of parameter `i`.
                let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
                name.get(1..)
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| sqlx::Error::Protocol(format!("parameter {name}")))?
            };
            let value = n.checked_sub(1).and_then(|n| args.get(n)).ok_or_else(|| {
                sqlx::Error::Protocol(format!("no value for parameter {n}: {} given", args.len()))
            })?;
            // SAFETY: text is copied by SQLite (`SQLITE_TRANSIENT`) with its length.
            let code = unsafe {
                match value {
                    Value::Text(v) | Value::OptText(Some(v)) => ffi::sqlite3_bind_text(
                        stmt,
                        i,
                        v.as_ptr().cast(),
                        c_int::try_from(v.len()).unwrap_or(c_int::MAX),
                        ffi::SQLITE_TRANSIENT(),
                    ),
                    Value::Int(v) | Value::OptInt(Some(v)) => ffi::sqlite3_bind_int64(stmt, i, *v),
                    Value::Bool(v) => ffi::sqlite3_bind_int64(stmt, i, i64::from(*v)),
                    Value::OptText(None) | Value::OptInt(None) => ffi::sqlite3_bind_null(stmt, i),
                }
            };
            if code != ffi::SQLITE_OK {
                return Err(self.error(code));
            }
        }
        Ok(())
    }

    /// The connection's last error, as sqlx would give it.
    fn error(&self, code: c_int) -> sqlx::Error {
        // SAFETY: the handle is open; the message is copied at once.
        let (code, message) = unsafe {
            let extended = ffi::sqlite3_extended_errcode(self.db.as_ptr());
            let message = ffi::sqlite3_errmsg(self.db.as_ptr());
            let message = if message.is_null() {
                String::new()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            };
            (if extended == 0 { code } else { extended }, message)
        };
        sqlx::Error::Database(Box::new(DirectError { code, message }))
    }

    fn rows(
        &mut self,
        sql: &str,
        args: &[Value],
        first: bool,
    ) -> Result<Vec<DirectRow>, sqlx::Error> {
        let mut rows = Vec::new();
        self.run(sql, args, Some(&mut rows), first)?;
        Ok(rows)
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        for (_, prepared) in self.prepared.drain() {
            finalize(prepared);
        }
    }
}

fn finalize(prepared: Prepared) {
    // SAFETY: prepared on this handle, finalized once (taken by value).
    unsafe { ffi::sqlite3_finalize(prepared.stmt.as_ptr()) };
}

/// A statement's work as the [`Conn`] methods return it. The statement has run by
/// then; the budget check lets a long write transaction give the thread to other
/// tasks now and then, as awaiting sqlx's thread did.
fn done<'c, T: Send + 'c>(result: T) -> BoxFuture<'c, T> {
    Box::pin(async move {
        tokio::task::consume_budget().await;
        result
    })
}

impl Conn for Direct {
    type Row = DirectRow;

    fn execute<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
        done(self.run(sql.as_str(), &args, None, false))
    }

    fn fetch_optional<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxFuture<'c, Result<Option<DirectRow>, sqlx::Error>> {
        done(
            self.rows(sql.as_str(), &args, true)
                .map(|rows| rows.into_iter().next()),
        )
    }

    fn fetch_one<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxFuture<'c, Result<DirectRow, sqlx::Error>> {
        done(
            self.rows(sql.as_str(), &args, true)
                .and_then(|rows| rows.into_iter().next().ok_or(sqlx::Error::RowNotFound)),
        )
    }

    fn fetch_all<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxFuture<'c, Result<Vec<DirectRow>, sqlx::Error>> {
        done(self.rows(sql.as_str(), &args, false))
    }

    fn fetch<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxStream<'c, Result<DirectRow, sqlx::Error>> {
        let rows = match self.rows(sql.as_str(), &args, false) {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        Box::pin(futures::stream::iter(rows))
    }
}

/// A column's value as SQLite stored it.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Int(i64),
    Real,
    Text(String),
    Blob,
}

/// A result row of a [`Direct`] statement.
#[derive(Debug)]
pub struct DirectRow {
    columns: Arc<[Box<str>]>,
    cells: Vec<Cell>,
}

impl DirectRow {
    fn read(stmt: *mut ffi::sqlite3_stmt, columns: &Arc<[Box<str>]>) -> Self {
        let count = c_int::try_from(columns.len()).unwrap_or(c_int::MAX);
        // SAFETY: the statement has a row; each value is copied before the next step.
        let cells = (0..count)
            .map(|i| unsafe {
                match ffi::sqlite3_column_type(stmt, i) {
                    ffi::SQLITE_INTEGER => Cell::Int(ffi::sqlite3_column_int64(stmt, i)),
                    // The store keeps no real numbers nor blobs; only the type is kept,
                    // for the error of a read that meets one.
                    ffi::SQLITE_FLOAT => Cell::Real,
                    ffi::SQLITE_BLOB => Cell::Blob,
                    ffi::SQLITE_TEXT => {
                        // The text first, then its length (SQLite's documented order).
                        let text = ffi::sqlite3_column_text(stmt, i);
                        let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, i)).unwrap_or(0);
                        Cell::Text(if text.is_null() {
                            String::new()
                        } else {
                            String::from_utf8_lossy(std::slice::from_raw_parts(text, len))
                                .into_owned()
                        })
                    }
                    _ => Cell::Null,
                }
            })
            .collect();
        Self {
            columns: Arc::clone(columns),
            cells,
        }
    }

    fn cell(&self, column: &str) -> Result<&Cell, sqlx::Error> {
        self.columns
            .iter()
            .position(|c| &**c == column)
            .map(|i| &self.cells[i])
            .ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_owned()))
    }
}

/// The error of a column whose value is not of the type asked for.
fn mismatch(column: &str, wanted: &str, found: &Cell) -> sqlx::Error {
    let found = match found {
        Cell::Null => "NULL",
        Cell::Int(_) => "INTEGER",
        Cell::Real => "REAL",
        Cell::Text(_) => "TEXT",
        Cell::Blob => "BLOB",
    };
    sqlx::Error::ColumnDecode {
        index: format!("{column:?}"),
        source: format!("expected {wanted}, found {found}").into(),
    }
}

impl Row for DirectRow {
    fn str(&self, column: &str) -> Result<&str, sqlx::Error> {
        match self.cell(column)? {
            Cell::Text(v) => Ok(v),
            other => Err(mismatch(column, "TEXT", other)),
        }
    }

    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.str(column).map(str::to_owned)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Text(v) => Ok(Some(v.clone())),
            other => Err(mismatch(column, "TEXT or NULL", other)),
        }
    }

    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        match self.cell(column)? {
            Cell::Int(v) => Ok(*v),
            other => Err(mismatch(column, "INTEGER", other)),
        }
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            other => Err(mismatch(column, "INTEGER or NULL", other)),
        }
    }

    fn boolean(&self, column: &str) -> Result<bool, sqlx::Error> {
        self.int(column).map(|v| v != 0)
    }
}

/// A statement's error from SQLite: its extended result code and message. Sorted into
/// sqlx's kinds as sqlx sorts its own SQLite errors, so that callers see no
/// difference.
#[derive(Debug)]
struct DirectError {
    code: c_int,
    message: String,
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for DirectError {}

impl DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;
    use sqlx::SqliteConnection;
    use sqlx::error::ErrorKind;

    use super::*;
    use crate::store::sql::exec::{args, dynamic, fixed};

    async fn memory() -> SqliteConnection {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, note TEXT, r REAL)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    }

    /// The prepared statements on the connection, sqlx's cache included.
    fn statements(locked: &mut LockedSqliteHandle<'_>) -> usize {
        let db = locked.as_raw_handle().as_ptr();
        let mut count = 0;
        // SAFETY: the handle is locked; the walk only reads SQLite's list.
        unsafe {
            let mut stmt = ffi::sqlite3_next_stmt(db, ptr::null_mut());
            while !stmt.is_null() {
                count += 1;
                stmt = ffi::sqlite3_next_stmt(db, stmt);
            }
        }
        count
    }

    #[tokio::test]
    async fn parameters_bind_by_number_and_rows_read_by_name() {
        let mut conn = memory().await;
        let mut locked = conn.lock_handle().await.unwrap();
        Direct::with(&mut locked, None, async |d| {
            // `$2` before `$1` in the text: each takes its own value.
            let changed = d
                .execute(
                    fixed("INSERT INTO t (n, id, note) VALUES ($2, $1, $3)"),
                    args!["a", 7_i64, None::<String>],
                )
                .await
                .unwrap();
            assert_eq!(changed, 1);
            let row = d
                .fetch_one(
                    fixed("SELECT id, n, note, n > 5 AS big FROM t WHERE id = $1"),
                    args!["a"],
                )
                .await
                .unwrap();
            assert_eq!(row.str("id").unwrap(), "a");
            assert_eq!(row.int("n").unwrap(), 7);
            assert_eq!(row.opt_text("note").unwrap(), None);
            assert!(row.boolean("big").unwrap());
            assert!(matches!(
                row.text("n"),
                Err(sqlx::Error::ColumnDecode { .. })
            ));
            assert!(matches!(
                row.int("nope"),
                Err(sqlx::Error::ColumnNotFound(_))
            ));
            let none = d
                .fetch_optional(fixed("SELECT id FROM t WHERE id = $1"), args!["b"])
                .await
                .unwrap();
            assert!(none.is_none());
            assert!(matches!(
                d.fetch_one(fixed("SELECT id FROM t WHERE id = $1"), args!["b"])
                    .await,
                Err(sqlx::Error::RowNotFound)
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn a_constraint_is_the_error_kind_sqlx_gives_and_the_statement_is_usable_after() {
        let mut conn = memory().await;
        let mut locked = conn.lock_handle().await.unwrap();
        Direct::with(&mut locked, None, async |d| {
            let insert = || fixed("INSERT INTO t (id, n) VALUES ($1, $2)");
            d.execute(insert(), args!["a", 1_i64]).await.unwrap();
            let Err(sqlx::Error::Database(e)) = d.execute(insert(), args!["a", 2_i64]).await else {
                panic!("a second row with the same key was inserted");
            };
            assert_eq!(e.kind(), ErrorKind::UniqueViolation);
            assert!(e.message().contains("UNIQUE"), "{}", e.message());
            // The same prepared statement, reset after its error, runs again.
            assert_eq!(d.execute(insert(), args!["b", 2_i64]).await.unwrap(), 1);
            // Several rows changed by one statement are counted.
            let changed = d
                .execute(fixed("UPDATE t SET n = n + 1"), Vec::new())
                .await
                .unwrap();
            assert_eq!(changed, 2);
        })
        .await;
    }

    #[tokio::test]
    async fn nothing_prepared_is_left_on_the_connection_and_sqlx_works_on_after() {
        let mut conn = memory().await;
        {
            let mut locked = conn.lock_handle().await.unwrap();
            let before = statements(&mut locked);
            Direct::with(&mut locked, None, async |d| {
                for i in 0..3_i64 {
                    let sql = dynamic(format!("INSERT INTO t (id, n) VALUES ($1, {i})"));
                    d.execute(sql, args![i.to_string()]).await.unwrap();
                }
                let rows = d
                    .fetch_all(fixed("SELECT id FROM t ORDER BY id"), Vec::new())
                    .await
                    .unwrap();
                assert_eq!(rows.len(), 3);
                // Several statements in one text run in turn.
                d.execute(
                    fixed("UPDATE t SET n = 0; DELETE FROM t WHERE id = '0'"),
                    Vec::new(),
                )
                .await
                .unwrap();
            })
            .await;
            let after = statements(&mut locked);
            assert_eq!(after, before, "a statement was left prepared");
        }
        // The connection's thread has it back; sqlx's statements still run.
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE n = 0")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 2);
        conn.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_transaction_sqlite_ended_on_its_own_shows_as_autocommit() {
        let mut conn = memory().await;
        let mut tx = conn.begin().await.unwrap();
        let mut locked = tx.lock_handle().await.unwrap();
        Direct::with(&mut locked, None, async |d| {
            assert!(!d.in_autocommit());
            d.execute(fixed("ROLLBACK"), Vec::new()).await.unwrap();
            assert!(d.in_autocommit());
        })
        .await;
    }
}
