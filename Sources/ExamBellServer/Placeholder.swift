enum _PExamBellServer {}
