"""`kbert demo EXPORT_DIR`: serve the phone demo (kbert/demo) for an export."""

import sys

import click

from kbert.demo.server import DEFAULT_HOST, DEFAULT_PORT, demo_urls, is_loopback, make_server


@click.command("demo")
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on. The default lets only this machine connect; "
                   "--host 0.0.0.0 lets a phone on the same network (LAN) connect.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port).")
@click.option("--mode", help="TFLite model the page loads first: float32, float16, dynamic or int8 "
                             "(default: float32 if exported, else the first there).")
@click.option("--certfile", type=click.Path(dir_okay=False, exists=True),
              help="TLS certificate (PEM): serve https, which phones need for offline use (service worker).")
@click.option("--keyfile", type=click.Path(dir_okay=False, exists=True), help="TLS private key (PEM).")
@click.option("--verbose", is_flag=True, help="Log every request.")
def demo(export_dir, host, port, mode, certfile, keyfile, verbose):
    """Serve the web demo for EXPORT_DIR so a phone's browser classifies text on
    the device (LiteRT.js, no server-side inference).

    Example: kbert demo exports/sst2 --host 0.0.0.0, then open the printed LAN
    URL on a phone on the same network.
    """
    server, info = make_server(export_dir, host, port, mode, certfile, keyfile, verbose)
    urls = demo_urls(server)
    click.echo(f"kbert demo: {info['name']} ({', '.join(info['modes'])}; default {info['mode']}) at "
               + "  ".join(urls))
    if is_loopback(host):
        click.echo("only this machine can connect; --host 0.0.0.0 lets a phone on the same network connect. "
                   "Ctrl-C stops.")
    elif server.scheme == "http":
        click.echo("open the LAN address on a phone on the same network; offline use (install to home "
                   "screen) needs https (--certfile/--keyfile) or localhost. Ctrl-C stops.")
    else:
        click.echo("Ctrl-C stops.")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


COMMANDS = [demo]
