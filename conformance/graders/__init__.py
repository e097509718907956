"""Where teachers already grade: what the kit writes for GitHub Classroom (a workflow of grader
steps, conformance/graders/_classroom.py) and for Gradescope (an autograder folder,
conformance/graders/_gradescope.py). Both score as `conformance batch` does
(conformance/_grades.py `points`).
"""

from conformance.graders._classroom import workflow as classroom_workflow

__all__: list[str] = ["classroom_workflow"]
