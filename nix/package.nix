# nixcrate, built from this checkout with nixpkgs' Python packages. Its version and its
# runtime dependencies are pyproject.toml's, read from there, so the two cannot drift.
{
  lib,
  python3Packages,
}:
let
  pyproject = lib.importTOML ../pyproject.toml;
  # "click>=8.1" -> python3Packages.click (these names are the same in nixpkgs).
  requirement = spec: python3Packages.${lib.toLower (lib.head (builtins.match "([A-Za-z0-9_.-]+).*" spec))};
in
python3Packages.buildPythonApplication {
  pname = pyproject.project.name;
  inherit (pyproject.project) version;
  pyproject = true;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      ../README.md
      ../nixcrate
      ../templates
    ];
  };

  build-system = [ python3Packages.setuptools ];
  dependencies = map requirement pyproject.project.dependencies;
  pythonImportsCheck = [ "nixcrate" ];

  meta = {
    inherit (pyproject.project) description;
    homepage = pyproject.project.urls.Repository;
    license = lib.licenses.mit;
    mainProgram = "nixcrate";
  };
}
