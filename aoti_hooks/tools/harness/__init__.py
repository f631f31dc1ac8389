"""The measuring harness of `aoti-hooks demo` and `bench`: each compile in its own process (`worker`,
`launch`), sampled while it runs (`measure`, `census`), what it wrote (`artifacts`), drawn (`timeline`)."""
