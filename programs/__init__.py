"""The aggregate programs shipped with fieldlearn (installed as `fieldlearn.programs`): a scenario names one by its
module name (`program: c2fl`), and each module's `program` is the declared program (`@program`)."""
