"""Copy the LiteRT.js files the demo page loads from node_modules into the kbert
package (kbert/demo/web/litert/), so that `pip install kbert` serves the demo with
no npm. Run after changing the @litertjs/core version in package.json:

    npm ci --prefix mobile_demo/web && python mobile_demo/web/update_litert.py
    python mobile_demo/web/update_litert.py --check   # vendored copy == node_modules?

Only what the page can load is copied (about 29 MB, stored as 9.4 MB): the two ES
modules and three of the four WebAssembly builds. The ~9 MB `.wasm` files are stored
gzipped (`X.wasm.gz`, deterministic: level 9, no name, mtime 0; about 2.8 MB each) so
that no file in git exceeds 5 MB; `kbert demo` serves them at `X.wasm`
(kbert/demo/server.py), gzip-coded or decompressed as the browser asks.
`loadLiteRt(dir)` picks `litert_wasm_internal` (relaxed SIMD),
`litert_wasm_threaded_internal` (relaxed SIMD + threads: app.js asks for threads
in a cross-origin isolated page) or `litert_wasm_compat_internal` (no relaxed SIMD,
e.g. Safari); the JSPI build is only loaded with `{jspi: true}`, which app.js never
passes. Source maps and type declarations are left out.
"""

import argparse
import filecmp
import gzip
import json
import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TARGET = os.path.join(REPO, "kbert", "demo", "web", "litert")
MODULES = os.path.join(HERE, "node_modules", "@litertjs")
PACKAGES = ("@litertjs/core", "@litertjs/wasm-utils")
# vendored path (under TARGET; the URL under /litert/ without `.gz`) -> path under
# node_modules/@litertjs. A `.gz` path holds the gzip of its source.
FILES = {
    "core/index.js": "core/dist/index.js",
    "wasm-utils/index.js": "wasm-utils/dist/index.js",
    **{f"wasm/litert_wasm_{build}.{ext}": f"core/wasm/litert_wasm_{build}.{ext.removesuffix('.gz')}"
       for build in ("internal", "threaded_internal", "compat_internal") for ext in ("js", "wasm.gz")},
}
SKIPPED_BUILDS = ("litert_wasm_jspi_internal.js",)
# Kept from the vendored folder on refresh: the npm packages ship no license file.
KEPT = ("LICENSE",)


def locked_versions():
    """{package: (version, integrity)} from package-lock.json."""
    with open(os.path.join(HERE, "package-lock.json"), encoding="utf-8") as f:
        lock = json.load(f)["packages"]
    return {p: (lock[f"node_modules/{p}"]["version"], lock[f"node_modules/{p}"]["integrity"]) for p in PACKAGES}


def loader_builds(index_js):
    """The WebAssembly loader scripts core/index.js can ask for (WASM_JS_*_FILE_NAME)."""
    with open(index_js, encoding="utf-8") as f:
        return set(re.findall(r'var WASM_JS_\w*FILE_NAME = "([\w.]+)"', f.read()))


def readme(versions):
    lines = ["# LiteRT.js, vendored for `kbert demo`", "",
             "Copied by `mobile_demo/web/update_litert.py` from the npm packages locked in",
             "`mobile_demo/web/package-lock.json`; do not edit by hand.", ""]
    for package, (version, integrity) in versions.items():
        lines.append(f"- `{package}` {version} ({integrity})")
    lines += ["", "Source: https://github.com/google-ai-edge/LiteRT (litert/js/packages).",
              "License: Apache-2.0, as both packages declare in their package.json; the npm",
              "packages carry no license or NOTICE file, so `LICENSE` here is the Apache-2.0 text.", "",
              "A `.gz` file is its source gzipped (level 9, no name, mtime 0); `kbert demo`",
              "serves it under its name without `.gz`.", "",
              "| file | from |", "|---|---|"]
    lines += [f"| `{dst}` | `@litertjs/{src}` |" for dst, src in FILES.items()]
    return "\n".join(lines) + "\n"


def check_modules(versions):
    for package, (version, _) in versions.items():
        path = os.path.join(HERE, "node_modules", package, "package.json")
        if not os.path.isfile(path):
            sys.exit(f"{path}: not installed: run `npm ci --prefix mobile_demo/web` first")
        with open(path, encoding="utf-8") as f:
            installed = json.load(f)["version"]
        if installed != version:
            sys.exit(f"{path}: version {installed}, package-lock.json says {version}: run `npm ci --prefix "
                     "mobile_demo/web`")
    builds = loader_builds(os.path.join(MODULES, "core", "dist", "index.js"))
    vendored = {os.path.basename(p) for p in FILES if p.startswith("wasm/") and p.endswith(".js")}
    if builds != vendored | set(SKIPPED_BUILDS):
        sys.exit(f"core/dist/index.js loads {sorted(builds)}; this script copies {sorted(vendored)}: update FILES")


def gzip_file(src, dst):
    """Write the gzip of `src` to `dst`, the same bytes for the same input (and zlib):
    level 9, no file name, mtime 0."""
    with open(src, "rb") as fin, open(dst, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def same_content(vendored, src):
    """Whether the vendored file holds `src`'s bytes (decompressed, for a `.gz`: the
    compressed bytes may differ between zlib versions)."""
    if not vendored.endswith(".gz"):
        return filecmp.cmp(vendored, src, shallow=False)
    try:
        with gzip.open(vendored, "rb") as a, open(src, "rb") as b:
            while True:
                block = a.read(1 << 20)
                if block != b.read(len(block) or 1):
                    return False
                if not block:
                    return True
    except (OSError, EOFError):  # not gzip, or cut short
        return False


def differences(versions):
    """Vendored files that differ from node_modules (or are missing), and files in
    the vendored folder that this script would not write (a stale raw `.wasm`)."""
    out = [dst for dst, src in FILES.items()
           if not os.path.isfile(os.path.join(TARGET, dst))
           or not same_content(os.path.join(TARGET, dst), os.path.join(MODULES, src))]
    expected = set(FILES) | set(KEPT) | {"README.md"}
    for folder, _, names in os.walk(TARGET):
        for name in names:
            path = os.path.relpath(os.path.join(folder, name), TARGET).replace(os.sep, "/")
            if path not in expected:
                out.append(f"{path} (not from node_modules)")
    readme_path = os.path.join(TARGET, "README.md")
    if not os.path.isfile(readme_path) or open(readme_path, encoding="utf-8").read() != readme(versions):
        out.append("README.md")
    return out


def update(versions):
    # Built beside the target and swapped in whole: an interrupted copy leaves the old one.
    parent = os.path.dirname(TARGET)
    tmp = tempfile.mkdtemp(prefix=".litert-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would become the folder's mode
    try:
        for dst, src in FILES.items():
            os.makedirs(os.path.dirname(os.path.join(tmp, dst)), exist_ok=True)
            if dst.endswith(".gz"):
                gzip_file(os.path.join(MODULES, src), os.path.join(tmp, dst))
            else:
                shutil.copyfile(os.path.join(MODULES, src), os.path.join(tmp, dst))
        for name in KEPT:
            if os.path.isfile(os.path.join(TARGET, name)):
                shutil.copyfile(os.path.join(TARGET, name), os.path.join(tmp, name))
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(readme(versions))
        old = None
        if os.path.isdir(TARGET):
            old = tempfile.mkdtemp(prefix=".litert-old-", dir=parent)
            os.rename(TARGET, os.path.join(old, "litert"))
        try:
            os.rename(tmp, TARGET)
        except BaseException:
            if old:
                os.rename(os.path.join(old, "litert"), TARGET)
            raise
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the vendored copy differs")
    args = parser.parse_args()
    versions = locked_versions()
    check_modules(versions)
    if args.check:
        changed = differences(versions)
        if changed:
            sys.exit(f"{TARGET}: differs from node_modules: {', '.join(changed)}: run {sys.argv[0]}")
        print(f"{TARGET}: up to date with {', '.join(f'{p} {v}' for p, (v, _) in versions.items())}")
        return
    if not os.path.isfile(os.path.join(TARGET, "LICENSE")):
        sys.exit(f"{TARGET}/LICENSE: missing: the npm packages ship none; put the Apache-2.0 text there")
    update(versions)
    size = sum(os.path.getsize(os.path.join(TARGET, p)) for p in FILES)
    print(f"{TARGET}: {len(FILES)} files, {size / 1e6:.1f} MB (wasm gzipped) from "
          f"{', '.join(f'{p} {v}' for p, (v, _) in versions.items())}")


if __name__ == "__main__":
    main()
