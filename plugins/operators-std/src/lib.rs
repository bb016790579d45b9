//! The Workflow-R1 and FlowSteer operator libraries as a flowrl plugin.
