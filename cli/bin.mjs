#!/usr/bin/env node
// The installed `fleetfold` command. The CLI is TypeScript, run through tsx's loader, resolved from this
// package's own node_modules (not the caller's cwd), so it works from any directory once installed.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
await main(process.argv.slice(2));
