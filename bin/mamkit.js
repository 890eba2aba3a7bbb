#!/usr/bin/env node
// `npx mamkit`: runs the compiled CLI (`npm install` builds dist/ through `prepare`).
import "../dist/cli/bin.js";
