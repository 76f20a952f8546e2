"""task submit | accept | decline | execute | send-results | list | queue
(services-and-cli.md §A14).

The task files are the local ``~/.pilot/tasks`` (:mod:`pilotgw.client.tasks`).
As in the reference, accept/decline/execute/send-results change the local
file first and only then open the daemon session to notify the submitter,
so without a daemon the change is kept and ``not_running`` is reported.
``execute`` only marks the head of the queue EXECUTING and prints it: it
runs nothing, the agent does the work and reports with ``send-results``.
"""

from __future__ import annotations

import time

from pilotgw.client import tasks
from pilotgw.client.errors import InvalidArgument
from pilotgw.cli import config
from pilotgw.cli.args import need, parse_flags
from pilotgw.cli.runtime import Ctx, fail
from pilotgw.overlay import tasksubmit as ts

_SUBCOMMANDS = "submit, accept, decline, execute, send-results, list, queue"


def _store() -> tasks.TaskStore:
    return tasks.TaskStore(config.pilot_dir())


def _required(value: str, flag: str) -> str:
    if not value:
        raise InvalidArgument(f"--{flag} is required")
    return value


def submit(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    need(flags.positional, 1, "task submit <address|hostname> --task <description>")
    description = _required(flags.get("task"), "task")
    client = ctx.client()
    addr = ctx.resolve(flags.positional[0])
    ctx.out.success(client.submit_task(addr, description, pilot_dir=config.pilot_dir()))


def accept(ctx: Ctx, args: list[str]) -> None:
    task_id = _required(parse_flags(args).get("id"), "id")
    task = tasks.accept(_store(), task_id, time.time())
    notified = ctx.client().send_task_status(task, ts.ACCEPTED, ts.JUST_ACCEPTED)
    ctx.out.success(tasks.accept_reply(task, notified))


def decline(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    task_id = _required(flags.get("id"), "id")
    justification = _required(flags.get("justification"), "justification")
    task = tasks.decline(_store(), task_id, justification, time.time())
    notified = ctx.client().send_task_status(task, ts.DECLINED, justification)
    ctx.out.success(tasks.decline_reply(task, notified))


def execute(ctx: Ctx, args: list[str]) -> None:
    task = tasks.execute(_store(), time.time())
    try:
        ctx.client().send_task_status(task, ts.EXECUTING, ts.JUST_EXECUTING)
    except InvalidArgument:  # best effort: a bad "from" only loses the notification
        pass
    ctx.out.success(tasks.execute_reply(task))


def send_results(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    task_id = _required(flags.get("id"), "id")
    text, path = flags.get("results"), flags.get("file")
    if not text and not path:
        raise InvalidArgument("either --results or --file is required")
    results = tasks.prepare_results(_store(), task_id, text, path, time.time())
    ctx.out.success(ctx.client().deliver_task_results(results))


def list_cmd(ctx: Ctx, args: list[str]) -> None:
    entries = tasks.list_tasks(_store(), parse_flags(args).get("type"))
    lines = []
    for t in entries:
        lines += [f"[{t['category']}] {t['task_id']} ({t['status']}) - {t['description']}",
                  f"  From: {t['from']} → To: {t['to']}"]  # fmt: skip
    ctx.out.success({"tasks": entries}, lines or "No tasks found")


def queue(ctx: Ctx, args: list[str]) -> None:
    entries = tasks.queue(_store())
    if not entries:
        ctx.out.success({"queue": []}, "Queue is empty")
        return
    lines = [f"Queued tasks ({len(entries)}):"]
    for n, t in enumerate(entries, 1):
        lines += [f"  {n}. {t['task_id']}: {t['description']}", f"     From: {t['from']}"]
    ctx.out.success({"count": len(entries), "queue": entries}, lines)


_DISPATCH = {
    "submit": submit,
    "accept": accept,
    "decline": decline,
    "execute": execute,
    "send-results": send_results,
    "list": list_cmd,
    "queue": queue,
}


def task(ctx: Ctx, args: list[str]) -> None:
    if not args:
        raise fail(
            "invalid_argument",
            "missing subcommand",
            "available: pilotctl task submit | accept | decline | execute | send-results | list | queue",
        )
    handler = _DISPATCH.get(args[0])
    if handler is None:
        raise fail("invalid_argument", f"unknown task subcommand: {args[0]}", f"available: {_SUBCOMMANDS}")
    handler(ctx, args[1:])
