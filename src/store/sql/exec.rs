//! How the shared store code talks to a connection of either database: statements are
//! text with `$N` parameters (sqlx numbers them on SQLite too), values are bound from
//! [`Value`]s, and columns are read by name through [`Row`]. Of the shared code, only
//! this file names sqlx's per-database types, once for both through `connection!`;
//! everything above it is written once.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::{SqlSafeStr as _, SqlStr};

/// A value bound to a statement parameter.
#[derive(Debug, Clone)]
pub enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Self::OptText(v)
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Self::OptText(v.map(str::to_owned))
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Self::OptInt(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// The values of a statement's parameters, `$1` first.
pub type Args = Vec<Value>;

/// `args![a, b, …]`: the [`Args`] of a statement, each converted with `Value::from`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::sql::exec::Value::from($value)),*]
    };
}
pub(crate) use args;

/// A result row; columns are read by name.
pub trait Row: Send + Sync {
    fn str(&self, column: &str) -> Result<&str, sqlx::Error>;
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn boolean(&self, column: &str) -> Result<bool, sqlx::Error>;
}

/// A connection (or a transaction's connection) of either database.
pub trait Conn: Send {
    type Row: Row;

    /// Runs a statement; returns how many rows it changed.
    fn execute<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>>;

    fn fetch_optional<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;

    fn fetch_one<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxFuture<'c, Result<Self::Row, sqlx::Error>>;

    fn fetch_all<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    /// The rows one by one as they arrive.
    fn fetch<'c>(
        &'c mut self,
        sql: SqlStr,
        args: Args,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>>;
}

/// Implements [`Row`] and [`Conn`] for one database's row and connection types.
macro_rules! connection {
    ($db:ty, $row:ty, $conn:ty) => {
        impl Row for $row {
            fn str(&self, column: &str) -> Result<&str, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn boolean(&self, column: &str) -> Result<bool, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
        }

        impl Conn for $conn {
            type Row = $row;

            fn execute<'c>(
                &'c mut self,
                sql: SqlStr,
                args: Args,
            ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
                Box::pin(async move {
                    let done = bound::<$db>(sql, args).execute(self).await?;
                    Ok(done.rows_affected())
                })
            }

            fn fetch_optional<'c>(
                &'c mut self,
                sql: SqlStr,
                args: Args,
            ) -> BoxFuture<'c, Result<Option<$row>, sqlx::Error>> {
                Box::pin(bound::<$db>(sql, args).fetch_optional(self))
            }

            fn fetch_one<'c>(
                &'c mut self,
                sql: SqlStr,
                args: Args,
            ) -> BoxFuture<'c, Result<$row, sqlx::Error>> {
                Box::pin(bound::<$db>(sql, args).fetch_one(self))
            }

            fn fetch_all<'c>(
                &'c mut self,
                sql: SqlStr,
                args: Args,
            ) -> BoxFuture<'c, Result<Vec<$row>, sqlx::Error>> {
                Box::pin(bound::<$db>(sql, args).fetch_all(self))
            }

            fn fetch<'c>(
                &'c mut self,
                sql: SqlStr,
                args: Args,
            ) -> BoxStream<'c, Result<$row, sqlx::Error>> {
                bound::<$db>(sql, args).fetch(self)
            }
        }
    };
}

connection!(
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    sqlx::SqliteConnection
);
connection!(sqlx::Postgres, sqlx::postgres::PgRow, sqlx::PgConnection);

/// The statement `sql` with `args` bound in order.
fn bound<'q, DB>(sql: SqlStr, args: Args) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: sqlx::Database,
    String: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    Option<String>: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    i64: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    Option<i64>: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    bool: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::query::<DB>(sql);
    for value in args {
        query = match value {
            Value::Text(v) => query.bind(v),
            Value::OptText(v) => query.bind(v),
            Value::Int(v) => query.bind(v),
            Value::OptInt(v) => query.bind(v),
            Value::Bool(v) => query.bind(v),
        };
    }
    query
}

/// A statement built at run time (one that names the license columns, or whose
/// conditions depend on the filters set).
pub(crate) fn dynamic(sql: String) -> SqlStr {
    sqlx::AssertSqlSafe(sql).into_sql_str()
}

/// A statement fixed at compile time.
pub(crate) fn fixed(sql: &'static str) -> SqlStr {
    sqlx::SqlSafeStr::into_sql_str(sql)
}
