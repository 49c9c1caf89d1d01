// Lets `npm start` and `npm test` work on a fresh clone: install dependencies when they are missing.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

if (!existsSync('node_modules/.package-lock.json')) {
  console.error('fleetfold: node_modules missing, running npm ci …');
  execSync('npm ci', { stdio: 'inherit' });
}
