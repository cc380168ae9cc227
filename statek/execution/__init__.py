"""Running a job's code: namespace, injected functions, statement interpreter, conversation."""
