"""The only code that touches private torch and ExecuTorch symbols.

`inductor` patches ``torch._inductor``; `executorch` patches ExecuTorch's AOTI backends;
`export` copies ``ExportedProgram`` state; `ops` reads op schemas and the dispatch-mode stack.
Both install their patches while at least one session is active and check, before
installing anything, that every symbol they patch exists in the expected shape.
"""
