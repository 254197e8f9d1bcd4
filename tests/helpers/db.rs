//! A fresh database per test, on SQLite or PostgreSQL; a PostgreSQL one is dropped when
//! the test ends (passed or failed).

use super::{pg_admin, pg_server};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database for one test: a file in a temporary folder, or a `telehub_test_*`
/// database on the `TELEHUB_TEST_PG` server, dropped (`WITH (FORCE)`) on drop.
pub struct TestDb {
    pub url: String,
    dir: tempfile::TempDir,
    /// The server and name of the PostgreSQL database this test made.
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}", dir.path().join("telehub.db").display()),
                dir,
                pg: None,
            },
            Backend::Postgres => {
                let server = pg_server().expect("PostgreSQL tests check for a server first");
                let name = format!("telehub_test_{}", rand_suffix());
                pg_admin(&server, &format!("CREATE DATABASE {name}")).await;
                let (base, _) = server
                    .rsplit_once('/')
                    .expect("TELEHUB_TEST_PG ends in /DBNAME");
                Self {
                    url: format!("{base}/{name}"),
                    dir,
                    pg: Some((server, name)),
                }
            }
        }
    }

    /// The test's temporary folder (holding the SQLite file, if any).
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on another future:
        // the DROP runs on a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            rt.block_on(pg_admin(&server, &sql));
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("the test database could not be dropped");
        }
    }
}

pub fn rand_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// Runs a test body (`async fn name(Backend)`) on SQLite and on PostgreSQL; the
/// PostgreSQL variant is skipped, and reported, when no server is configured.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::need_pg!();
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}
