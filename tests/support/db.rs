//! A PostgreSQL database per test, dropped afterwards (`WITH (FORCE)`), even after a
//! panic.

use std::future::Future;
use std::pin::Pin;

use sqlx::Connection;

/// The variable naming an administrative PostgreSQL URL.
pub const POSTGRES_ENV: &str = "LICENSE_FACADE_TEST_POSTGRES_URL";

/// `LICENSE_FACADE_TEST_STORE=postgres` runs a suite's services on PostgreSQL instead
/// of SQLite; `.ci/run` runs the suites both ways.
pub const STORE_ENV: &str = "LICENSE_FACADE_TEST_STORE";

/// A database created for one test on the server [`POSTGRES_ENV`] names.
pub struct TestDb {
    admin_url: String,
    name: String,
    /// The new database's URL.
    pub url: String,
    /// For the PostgreSQL-only tests: their turn (see [`PG_ONLY_AT_ONCE`]).
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// PostgreSQL-only tests ([`TestDb::create`]) of one test process that hold a database
/// at once. They start replica sets: three services of up to 21 connections each
/// (16 in the pool, 4 for leases, 1 session), and the server takes 100 in all. Two sets
/// side by side reached 92 (and the server refused clients at four), so the tests take
/// turns, however many tests the harness runs at once.
const PG_ONLY_AT_ONCE: usize = 1;

static PG_ONLY_TURNS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::Semaphore::new(PG_ONLY_AT_ONCE)));

impl TestDb {
    /// A new empty database, or `None` (after printing why) when [`POSTGRES_ENV`] is
    /// unset: for the tests that only make sense on PostgreSQL. With `CI=true` an unset
    /// [`POSTGRES_ENV`] fails the test instead.
    pub async fn create() -> Option<Self> {
        super::init();
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            super::skip_unless_ci(&format!("{POSTGRES_ENV} is not set (no PostgreSQL server)"));
            return None;
        };
        let turn = PG_ONLY_TURNS
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut db = Self::create_on(admin_url, "lf").await;
        db._turn = Some(turn);
        Some(db)
    }

    /// With [`STORE_ENV`]`=postgres`, a new database named `prefix_…` for a suite that
    /// runs on either store; `None` on SQLite.
    pub async fn for_store(prefix: &str) -> Option<Self> {
        Some(Self::create_on(Self::store_admin_url()?, prefix).await)
    }

    /// [`for_store`](Self::for_store) for callers that are not async (or are inside a
    /// runtime that must not be blocked on).
    pub fn for_store_blocking(prefix: &str) -> Option<Self> {
        let admin_url = Self::store_admin_url()?;
        let prefix = prefix.to_owned();
        Some(on_own_runtime(move || {
            Box::pin(async move { Self::create_on(admin_url, &prefix).await })
        }))
    }

    fn store_admin_url() -> Option<String> {
        if std::env::var(STORE_ENV).as_deref() != Ok("postgres") {
            return None;
        }
        Some(
            std::env::var(POSTGRES_ENV)
                .unwrap_or_else(|_| panic!("{STORE_ENV}=postgres needs {POSTGRES_ENV}")),
        )
    }

    async fn create_on(admin_url: String, prefix: &str) -> Self {
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("the test PostgreSQL server answers");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Self {
            admin_url,
            name,
            url,
            _turn: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime (or after it is gone), which cannot be
        // blocked on: use a thread with a runtime of its own.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = on_own_runtime(move || {
            Box::pin(async move {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        });
        if dropped.is_err() {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

/// `url` with its database (path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Runs `f` on a runtime of its own in another thread and waits for it.
fn on_own_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Pin<Box<dyn Future<Output = T> + Send>> + Send + 'static,
) -> T {
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f())
    });
    super::child::wait_blocking(move || thread.join()).expect("the database thread")
}
