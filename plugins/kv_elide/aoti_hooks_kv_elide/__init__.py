"""aoti-hooks plugin `kv_elide`: KV caches take no device memory during an AOTI export; the artifact is unchanged.

Installed and discoverable; its hooks land with the plugin's own issue.
"""

OPTIONS = ()
