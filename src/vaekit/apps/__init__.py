"""Old home of the tasks (now :mod:`vaekit.tasks`) and of M2 (now :mod:`vaekit.families.m2`); these modules
keep the old import paths working."""
