"""The release, in a module of its own: what every stored trial and checkpoint records, importable without the
package's API (resnet_bench/__init__.py re-exports it)."""

__version__ = "0.1.0"
