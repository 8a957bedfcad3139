"""``manage.py quickstart``: set up a fresh installation and run the worker cluster and the web server."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

PASSWORD_FILE = "initial-admin-password"
#: Seconds each child gets to stop after SIGTERM before it is killed.
STOP_GRACE = 15.0


class Command(BaseCommand):
    help = (
        "Quick start: migrate; create an operator superuser when no user exists (its generated password is "
        "printed and kept in <data dir>/initial-admin-password, mode 0600); build the honeypot images if any is "
        "missing; set up the schedules; then run `qcluster` and `runserver --noreload` as child processes, "
        "forwarding their output, until Ctrl-C or SIGTERM stops both."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="address:port of the web server")
        parser.add_argument("--username", default="admin", help="name of the first account (default admin)")
        parser.add_argument("--no-images", action="store_true", help="do not check or build the images")
        parser.add_argument("--no-serve", action="store_true", help="set up only; start nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        host, _, port = str(options["addr"]).rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise CommandError(f"--addr {options['addr']!r} must be address:port, e.g. 127.0.0.1:8000")
        self._step("Applying migrations")
        call_command("migrate", interactive=False, verbosity=0, stdout=self.stdout, stderr=self.stderr)
        self.stdout.write("Migrations applied; the database is up to date.")
        self._step("Accounts")
        self._initial_user(options["username"], options["addr"])
        if not options["no_images"]:
            self._step("Honeypot images")
            self._images()
        if "setup_schedules" in get_commands():
            self._step("Schedules")
            call_command("setup_schedules", stdout=self.stdout, stderr=self.stderr)
        if options["no_serve"]:
            self.stdout.write(self.style.SUCCESS("Set-up complete; start the services with `manage.py quickstart`."))
            return
        self._step("Starting the worker cluster and the web server")
        self._serve(options["addr"])

    def _step(self, title: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"==> {title}"))

    # --- the first account ---------------------------------------------------------------------------------------

    def _initial_user(self, username: str, addr: str) -> None:
        if User.objects.exists():
            self.stdout.write("Accounts exist; none created.")
            return
        password = secrets.token_urlsafe(18)
        with transaction.atomic():
            user = User.objects.create_superuser(username=username, email="", password=password)
            operator = Group.objects.filter(name="operator").first()
            if operator is not None:
                user.groups.add(operator)
        path = Path(settings.DECNET_DATA_DIR) / PASSWORD_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # the file may have existed with a wider mode
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(password + "\n")
        self.stdout.write(self.style.SUCCESS(f"Created the operator account {username!r}."))
        self.stdout.write(f"  Log in at http://{addr}/admin/ as {username} with password: {password}")
        self.stdout.write(f"  (kept in {path}, mode 0600; change it in the admin, then delete the file)")

    # --- images ---------------------------------------------------------------------------------------------------

    def _images(self) -> None:
        try:
            from deckies.engine.images import missing_images
        except ImportError as exc:
            self.stdout.write(self.style.WARNING(f"Image checks are not available ({exc}); skipped."))
            return
        import docker

        client = None
        try:
            client = docker.DockerClient(base_url=str(settings.DECNET_DEFAULT_DOCKER_URL), version="auto", timeout=10)
            missing = missing_images(client)
        except Exception as exc:
            # Any failure to talk to the engine (refused socket, bad URL, timeout) means the same thing here: the
            # web interface still starts, but nothing can be deployed until the engine runs.
            self.stdout.write(
                self.style.WARNING(
                    f"Docker engine unavailable at {settings.DECNET_DEFAULT_DOCKER_URL} ({exc}); images not checked. "
                    "Deckies cannot be deployed until it runs; then run `manage.py build_images`."
                )
            )
            return
        finally:
            if client is not None:
                client.close()
        if not missing:
            self.stdout.write("All images are present.")
            return
        self.stdout.write(f"Missing: {', '.join(missing)}; building (a few minutes, once).")
        try:
            call_command("build_images", stdout=self.stdout, stderr=self.stderr)
        except CommandError as exc:
            self.stdout.write(self.style.WARNING(f"Image build failed: {exc}; deploys will fail until it succeeds."))

    # --- the child processes ------------------------------------------------------------------------------------------

    def child_commands(self, addr: str) -> list[tuple[str, list[str]]]:
        """``(label, argv)`` of each child process: the worker cluster and the web server."""
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        return [
            ("worker", [sys.executable, manage, "qcluster"]),
            ("web", [sys.executable, manage, "runserver", addr, "--noreload"]),
        ]

    def _forward(self, label: str, stream: IO[str], lock: threading.Lock) -> None:
        for line in stream:
            with lock:
                self.stdout.write(f"[{label}] {line.rstrip()}")
                self.stdout.flush()

    def _serve(self, addr: str) -> None:
        if settings.SECURE_SSL_REDIRECT:
            self.stdout.write(
                self.style.WARNING("DECNET_TLS is on but runserver speaks plain HTTP; set DECNET_TLS=0 locally.")
            )
        stop = threading.Event()
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def on_stop(signum: int, frame: FrameType | None) -> None:
                stop.set()

            # SIGINT explicitly too: a shell that starts us in the background sets SIGINT to "ignore", and Python
            # keeps that, so Ctrl-C semantics must not depend on the inherited disposition.
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_stop)
        lock = threading.Lock()
        children: list[tuple[str, subprocess.Popen[str]]] = []
        forwarders: list[threading.Thread] = []
        failure: str | None = None
        try:
            for label, argv in self.child_commands(addr):
                process = subprocess.Popen(
                    argv,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    bufsize=1,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    # Own process group: a terminal's Ctrl-C reaches only this process, which then stops the
                    # children in order instead of racing them.
                    process_group=0,
                )
                children.append((label, process))
                assert process.stdout is not None
                thread = threading.Thread(target=self._forward, args=(label, process.stdout, lock), daemon=True)
                thread.start()
                forwarders.append(thread)
            with lock:
                self.stdout.write(self.style.SUCCESS(f"Admin:    http://{addr}/admin/"))
                self.stdout.write(self.style.SUCCESS(f"API:      http://{addr}/api/v1/  (docs: /api/v1/docs/)"))
                self.stdout.write("Ctrl-C stops the worker cluster and the web server.")
            while not stop.is_set():
                exited = [(label, p.returncode) for label, p in children if p.poll() is not None]
                if exited:
                    failure = ", ".join(f"{label} exited with code {code}" for label, code in exited)
                    break
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop(children)
            for thread in forwarders:
                thread.join(timeout=2)
            for _label, process in children:
                if process.stdout is not None:
                    process.stdout.close()
            for restored, handler in previous.items():
                signal.signal(restored, handler)
        if failure:
            raise CommandError(f"{failure}; the other process was stopped")
        self.stdout.write("Stopped.")

    def _stop(self, children: Sequence[tuple[str, subprocess.Popen[str]]]) -> None:
        for _label, process in children:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for label, process in children:
            try:
                process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.stdout.write(self.style.WARNING(f"{label} did not stop in {STOP_GRACE:g}s; killing it"))
                process.kill()
                process.wait()
