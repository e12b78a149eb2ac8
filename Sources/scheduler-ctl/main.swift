import Ctl

await SchedulerCtl.runMain()
