"""aoti-hooks plugin `sdpa_configs`: Triton SDPA autotune configs that fit the target GPU's shared memory, each checked for numerics.

Installed and discoverable; its hooks land with the plugin's own issue.
"""

OPTIONS = ()
