"""A stand-in for the few curl options README.md's examples use, for machines without curl.

tests/test_readme.py runs the examples with the real curl when the machine has one, and with this
too, so the examples stay runnable where curl is missing (CI needs only Python). An option it does
not know is refused loudly rather than ignored: a silently different request would test nothing.
"""

import sys
from pathlib import Path

import httpx

# Options that only change what curl prints; the runner collects status and body through -D and -o.
QUIET = {"-s", "-S", "-sS", "-Ss", "--silent", "--show-error"}


def main(argv: list[str]) -> int:
    method: str | None = None
    # curl sends no Accept-Encoding unless asked, so answers come back uncompressed; httpx would ask.
    headers: dict[str, str] = {"Accept-Encoding": "identity"}
    data: str | None = None
    dump: str | None = None
    output: str | None = None
    url: str | None = None
    args = iter(argv)
    for arg in args:
        if arg in ("-X", "--request"):
            method = next(args)
        elif arg in ("-H", "--header"):
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw", "--data-binary"):
            data = next(args)
            if data.startswith("@") and arg != "--data-raw":
                print(f"readme curl shim: {arg} @file is not supported; install curl", file=sys.stderr)
                return 2
        elif arg in ("-D", "--dump-header"):
            dump = next(args)
        elif arg in ("-o", "--output"):
            output = next(args)
        elif arg in QUIET:
            continue
        elif arg.startswith("-"):
            print(
                f"readme curl shim: option {arg} is not supported; install curl or extend this shim",
                file=sys.stderr,
            )
            return 2
        else:
            url = arg
    if url is None:
        print("readme curl shim: no URL", file=sys.stderr)
        return 2
    if data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    try:
        response = httpx.request(
            method or ("POST" if data is not None else "GET"),
            url,
            headers=headers,
            content=None if data is None else data.encode(),
            timeout=60,
        )
    except httpx.TransportError as exc:
        print(f"readme curl shim: {url}: {exc}", file=sys.stderr)
        return 7
    if dump is not None:
        lines = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
        lines += [f"{name}: {value}" for name, value in response.headers.multi_items()]
        Path(dump).write_text("\r\n".join(lines) + "\r\n\r\n", encoding="utf-8")
    if output is not None:
        Path(output).write_bytes(response.content)
    else:
        sys.stdout.buffer.write(response.content)
    return 0


# Run as ``python -m tests.readme_curl`` from the repository: as a script, tests/ would come first on
# sys.path and its calendar package would hide the standard library's.
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
