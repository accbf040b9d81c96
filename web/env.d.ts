// esbuild bundles stylesheets imported from the pages' scripts into one .css file per page.
declare module "*.css";
