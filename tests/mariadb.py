"""A real MariaDB server for tests: Debian's mariadb-server, started in a temporary data dir on a
free loopback port, with one database and user for ML Metadata (the recipe in the team's stack
notes). `make test` installs the package when missing; without it the tests fail, saying why."""
import os
import pathlib
import secrets
import shutil
import subprocess
import time

import portpicker
import pymysql
import pytest

from pipeline import configs

# Where Debian puts the server (/usr/sbin is not on every PATH).
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
# What `make test` wrote when it tried to install the package.
INSTALL_LOG = pathlib.Path(__file__).resolve().parents[1] / ".venv" / "mariadb-install.log"
DATABASE, USER = "mlmd", "movierec"
PASSWORD_ENV = "MOVIEREC_TEST_METADATA_PASSWORD"


def _tool(name: str) -> str:
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        why = INSTALL_LOG.read_text()[-2000:] if INSTALL_LOG.exists() else "no install log"
        pytest.fail(f"{name} not found: the tests need Debian's mariadb-server (`make test` installs it: "
                    f"apt-get install -y mariadb-server). Install log: {why}", pytrace=False)
    return path


class MariaDB:
    """mariadbd on 127.0.0.1:<free port>, data in `folder`, stopped by `stop()`."""

    def __init__(self, folder: pathlib.Path):
        self.folder, self.port = folder, portpicker.pick_unused_port()
        self.socket, self.password = str(folder / "mariadb.sock"), secrets.token_hex(8)
        datadir = folder / "data"
        install = subprocess.run(
            [_tool("mariadb-install-db"), "--no-defaults", "--user=root", f"--datadir={datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, timeout=300)
        assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
        self.log = folder / "mariadbd.log"
        self.process = subprocess.Popen(
            [_tool("mariadbd"), "--no-defaults", "--user=root", f"--datadir={datadir}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--pid-file={folder / 'mariadbd.pid'}", f"--log-error={self.log}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        with self.root() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
            for host in ("127.0.0.1", "localhost"):
                cursor.execute(f"CREATE USER '{USER}'@'{host}' IDENTIFIED BY %s", (self.password,))
                cursor.execute(f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'{host}'")

    def root(self, timeout: float = 120) -> pymysql.Connection:
        """A root connection over the server's socket, once it accepts them."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True)
            except pymysql.err.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mariadbd did not start: {self.log.read_text()[-3000:]}")
                time.sleep(0.2)

    def metadata(self) -> configs.MetadataConfig:
        """Settings for a pipeline whose ML Metadata lives in this server (password in PASSWORD_ENV)."""
        return configs.MetadataConfig(kind="mysql", host="127.0.0.1", port=self.port, database=DATABASE,
                                      user=USER, password_env=PASSWORD_ENV)

    def query(self, sql: str, *args):
        with self.root() as connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=120)
