"""aoti-hooks plugin `chunked_dequant`: Dequant-matmul transients during an AOTI export, sized from a memory budget.

Installed and discoverable; its hooks land with the plugin's own issue.
"""

OPTIONS = ()
